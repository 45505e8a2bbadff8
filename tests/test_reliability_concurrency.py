"""Concurrency: processes pulling one pack at once, threads generating on one patched model, and a
model patched and unpatched many times.

Run 20 times in a row (docs/reliability.md):
    for i in $(seq 20); do .venv/bin/python -m pytest -q -p no:randomly \
        tests/test_reliability_concurrency.py || break; done
"""

from __future__ import annotations

import gc
import hashlib
import json
import subprocess
import sys
import threading
import tracemalloc
from pathlib import Path

import torch
from conftest import random_pack
from hubserver import HubServer
from tiny_models import HIDDEN, LAYERS, build, generate

import l2v_hub
from l2v_hub.hub import publish

REPO = "l2v-test/tiny-pack"
PROCESSES = 8
PULL = """
import hashlib, json, sys
from l2v_hub.hub import pull
pulled = pull(sys.argv[1], "v1.0.0")
files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in pulled.folder.iterdir()}
print(json.dumps({"folder": str(pulled.folder), "files": files}))
"""


def test_processes_pulling_one_pack_at_once_get_the_same_bytes_from_one_download(
    hub: HubServer, tmp_path: Path
) -> None:
    pack = random_pack()
    publish(pack, REPO)
    expected = {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in pack.save_pretrained(tmp_path / "pack").iterdir()
    }
    hub.reset_counts()
    runs = [
        subprocess.Popen([sys.executable, "-c", PULL, REPO], stdout=subprocess.PIPE, text=True)
        for _ in range(PROCESSES)
    ]
    outputs = [run.communicate(timeout=240)[0] for run in runs]
    assert [run.returncode for run in runs] == [0] * PROCESSES
    results = [json.loads(out.strip().splitlines()[-1]) for out in outputs]
    assert all(r == results[0] for r in results)  # one folder, the same bytes
    assert results[0]["files"] == expected
    # one download per file, whoever got there first; the others found it in the shared cache
    downloads = [path for kinds, method, path, _ in hub.log if "download" in kinds]
    assert len(downloads) == len(expected), downloads


def hook_count(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


PROMPTS = [[5, 6, 7, 8, 9, 10, 11], [12, 13, 14]]  # different lengths: different steered positions


def test_two_threads_generating_on_one_patched_model_get_what_each_gets_alone() -> None:
    model = build("llama")
    pack = random_pack(HIDDEN, LAYERS)
    with l2v_hub.patch(model, pack, strength=0.9, layers=[0, 1, 2]):
        alone = [generate(model, torch.tensor([p]), new_tokens=6).sequences for p in PROMPTS]
        start, results, errors = threading.Barrier(2), {}, []

        def run(i: int) -> None:
            try:
                start.wait()
                results[i] = [
                    generate(model, torch.tensor([PROMPTS[i]]), new_tokens=6).sequences
                    for _ in range(15)
                ]
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors, errors
    for i in range(2):
        assert all(torch.equal(seq, alone[i]) for seq in results[i]), f"thread {i} differs"
    unsteered = generate(model, torch.tensor([PROMPTS[0]]), new_tokens=6).sequences
    assert not torch.equal(unsteered, alone[0])  # the patch did steer (and is gone)


def test_patching_and_unpatching_1000_times_leaks_no_hook_and_no_memory() -> None:
    model = build("llama")
    pack = random_pack(HIDDEN, LAYERS)
    ids = torch.tensor([PROMPTS[0]])
    hooks, methods = hook_count(model), dict(vars(model))

    def cycle() -> None:
        with l2v_hub.patch(model, pack, layers=[0, 1, 2]):
            pass
        handle = l2v_hub.patch(model, pack)
        handle.remove()

    # Warm up bounded caches (torch, the allocator, the interpreter's) before measuring: they
    # grow by ~45 KB over the first ~1,000 cycles and then not at all (a leak would keep growing).
    for _ in range(1000):
        cycle()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for _ in range(1000):
            cycle()
        gc.collect()
        grown = sum(
            s.size_diff for s in tracemalloc.take_snapshot().compare_to(before, "filename")
        )
    finally:
        tracemalloc.stop()
    assert hook_count(model) == hooks == 0
    assert set(vars(model)) == set(methods)  # no generate wrapper left behind
    assert grown < 64 * 1024, f"{grown} bytes more after 1,000 patch/unpatch cycles"
    with torch.no_grad():
        out = model(input_ids=ids).logits
    with l2v_hub.patch(model, pack), torch.no_grad():
        assert not torch.equal(model(input_ids=ids).logits, out)  # it still patches
