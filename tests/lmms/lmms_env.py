"""What the lmms-eval tests (run by `make test-lmms` in .venv-lmms, offline) work on: a tiny
LLaVA-OneVision folder, a pack for it and the local task's data; and the lmms-eval CLI run on them.
Not a test module itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from conftest import random_pack  # tests/conftest.py
from tiny_llm import byte_tokenizer, tiny_llama

from l2v_hub.demo.image_problems import make_image_problems
from l2v_hub.demo.vlm import save_vlm

HERE = Path(__file__).resolve().parent
TASK_DIR = HERE / "task"
TASK = "l2v_image_problems"
# A handful of problems: the first five open ones (one of each kind) and the first five multiple
# choice ones (every sixth row of the generator, from the fourth), where a tiny model's letters
# can be right; in the generator's order.
NUMERIC, CHOICE = 5, 5
# The tiny LM's seed: one whose one-token answers (the task's budget) are choice letters right on
# some rows and wrong on others, unpatched and with the pack, so the paired statistics bite.
SEED = 2
HIDDEN, LAYERS = 48, 5
STRENGTH, POSITIONS = 4.0, "all"
sys.path.insert(0, str(TASK_DIR))
import utils as task  # noqa: E402  (the task's utils.py: the tests ask and score as it does)


@dataclass(frozen=True)
class Env:
    """Where the session's files are: ``root`` is the working directory the task reads from."""

    root: Path
    model: Path
    pack: Path
    problems: Path  # make_image_problems' JSONL (what `l2v-hub eval` reads)


def make_env(root: Path) -> Env:
    """The tiny VLM folder, the pack and the task's data, written into ``root``."""
    lm, tok = tiny_llama(hidden=HIDDEN, layers=LAYERS, seed=SEED), byte_tokenizer(chat_template=True)
    # Answers in digits, A-D and spaces, or EOS (every other output row zeroed, so that one of
    # these has the largest logit): scoreable, and right or wrong by what the model computes.
    keep = [*tok("0123456789ABCD ", add_special_tokens=False)["input_ids"], tok.eos_token_id]
    with torch.no_grad():
        rows = torch.ones(lm.lm_head.weight.shape[0], dtype=torch.bool)
        rows[keep] = False
        lm.lm_head.weight[rows] = 0
    model = save_vlm(lm, tok, "llava_onevision", root / "tiny-vlm",
                     model_id="test/tiny-llava-onevision")
    pack = random_pack(HIDDEN, LAYERS, target_id="test/tiny-llava-onevision",
                       model_type="llava_onevision", scale=None)
    pack.save_pretrained(root / "pack")
    every = make_image_problems(root / "source", count=6 * CHOICE, size=128)
    lines = every.read_text(encoding="utf-8").splitlines(keepends=True)
    problems = root / "source" / "chosen.jsonl"
    choice = [i for i in range(len(lines)) if i % 6 == 3][:CHOICE]
    open_ = [i for i in range(len(lines)) if i % 6 != 3][:NUMERIC]
    problems.write_text("".join(lines[i] for i in sorted(choice + open_)), encoding="utf-8")
    task.write_task_data(problems, root / "l2v-image-problems")
    return Env(root, model, root / "pack", problems)


def run_lmms_eval(env: Env, out: str, model_args: str) -> subprocess.CompletedProcess[str]:
    """The real `lmms-eval eval` CLI on the local task, offline, in ``env.root``; samples and
    results under ``env.root / out``."""
    command = [sys.executable, "-m", "lmms_eval", "eval", "--model", "l2v_hub",
               "--model_args", model_args, "--tasks", TASK, "--include_path", str(TASK_DIR),
               "--batch_size", "1", "--log_samples", "--output_path", out]
    offline = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
               "HF_HOME": str(env.root / "hf-home"), "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(command, cwd=env.root, env={**os.environ, **offline},
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def samples(env: Env, out: str) -> list[dict]:
    """The samples lmms-eval logged for ``out``'s run, in doc_id order."""
    (path,) = (env.root / out).rglob(f"*_samples_{TASK}.jsonl")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return sorted(rows, key=lambda r: r["doc_id"])


def results(env: Env, out: str) -> dict:
    (path,) = (env.root / out).rglob("*_results.json")
    return json.loads(path.read_text(encoding="utf-8"))
