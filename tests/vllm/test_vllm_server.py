"""The OpenAI-compatible server started as docs/serving.md says, a pack loaded at start:
``vllm_xargs`` choose the pack per request; an unknown pack is a 400 that names it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from vllm_fixtures import BLOCK, MODEL_ID, NEW_TOKENS, PROMPTS, make_pack, reference, tiny_qwen2

A = "pack-a@1.0.0"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("vllm-server")
    model = tiny_qwen2(root / "model")
    pack = make_pack(root / "a", name="pack-a", op="norm_preserving_add", positions="all",
                     seed=1, scale=4.0, strength=0.8, layers=(1,))
    port = _port()
    config = json.dumps({"l2v_hub": {"packs": [str(pack)], "model_id": MODEL_ID}})
    command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
               "--served-model-name", "tiny", "--dtype", "float32", "--block-size", str(BLOCK),
               "--max-model-len", "256", "--enforce-eager", "--host", "127.0.0.1",
               "--port", str(port), "--additional-config", config]
    log = (root / "server.log").open("w")
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600
        while True:
            if proc.poll() is not None:
                raise AssertionError("the server exited:\n" + (root / "server.log").read_text())
            try:
                urllib.request.urlopen(url + "/health", timeout=5)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(2)
        yield {"url": url, "model": model, "pack": pack}
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _complete(server: dict, prompt, xargs: dict | None) -> tuple[int, dict]:
    body = {"model": "tiny", "prompt": list(prompt), "max_tokens": NEW_TOKENS,
            "min_tokens": NEW_TOKENS, "temperature": 0, "ignore_eos": True,
            "return_token_ids": True}
    if xargs is not None:
        body["vllm_xargs"] = xargs
    request = urllib.request.Request(server["url"] + "/v1/completions",
                                     data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def test_steered_plain_and_unknown_pack(server: dict) -> None:
    prompt = PROMPTS[0]
    status, steered = _complete(server, prompt, {"l2v_pack": A})
    assert status == 200
    status, plain = _complete(server, prompt, None)
    assert status == 200
    want_steered, = reference(server["model"], [prompt], server["pack"])
    want_plain, = reference(server["model"], [prompt])
    assert steered["choices"][0]["token_ids"] == want_steered[0]
    assert plain["choices"][0]["token_ids"] == want_plain[0]
    assert steered["choices"][0]["text"] != plain["choices"][0]["text"]

    status, error = _complete(server, prompt, {"l2v_pack": "pack-z@9.9.9"})
    assert status == 400
    assert f"l2v_pack 'pack-z@9.9.9' is not loaded in this engine; loaded: {A}" in json.dumps(error)
    status, again = _complete(server, prompt, None)  # still serving
    assert status == 200 and again["choices"][0]["token_ids"] == want_plain[0]
