"""Pytest fixtures that run the test Hub (tests/hubserver.py) and point huggingface_hub at it.

`hub`: a started `HubServer` on 127.0.0.1 with the environment and huggingface_hub's import-time
constants pointing at it, a fresh HF_HOME under tmp_path, Xet and telemetry off and `HF_TOKEN` set
to `TEST_TOKEN`. Everything is undone after the test, and the test fails if the Hub itself hit an
internal error (a request it did not understand). l2v-hub's retry policy is `FAST_RETRIES` (waits of milliseconds), here and in subprocesses.
`go_offline(monkeypatch)` turns on
HF_HUB_OFFLINE both for this process and for subprocesses.

Why constants are patched: huggingface_hub copies HF_ENDPOINT, HF_HOME, HF_HUB_CACHE,
HF_HUB_OFFLINE, HF_HUB_DISABLE_XET, ... into `huggingface_hub.constants` when it is first imported
(and `HUGGINGFACE_CO_URL_TEMPLATE`, which `hf_hub_download` builds its URLs from, is derived from
ENDPOINT there). In a test process that imported it already, setting the variables does nothing;
`point_client_at` sets the variables (for subprocesses) and patches the constants (for this
process). Code under test may still pass `endpoint=hub.url` to `HfApi`; it does not have to.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path

import huggingface_hub
import pytest
from hubserver import TEST_TOKEN, HubServer
from huggingface_hub import constants

from l2v_hub.hub import retry

#: l2v-hub's retry policy in tests: the same number of tries, waits of milliseconds, and a stall
#: timeout short enough for "slow" faults and long enough for a loaded 2-core machine.
FAST_RETRIES = retry.RetryPolicy(attempts=3, backoff=0.01, max_delay=0.05, timeout=5.0)

# Modules that copied a constant at import (`from ..constants import X`) and read their copy.
_COPIES = {
    "huggingface_hub.utils._cache_manager": ("HF_HUB_CACHE",),
    "huggingface_hub.utils._cache_assets": ("HF_ASSETS_CACHE",),
    "huggingface_hub.utils._git_credential": ("ENDPOINT",),
    # huggingface_hub < 1.0 (the transformers 4.51 environment) builds download URLs from its copy.
    "huggingface_hub.file_download": ("HUGGINGFACE_CO_URL_TEMPLATE",),
}


def point_client_at(hub: HubServer, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point huggingface_hub, in this process and in subprocesses, at `hub` with cache `home`."""
    hub_cache = str(home / "hub")
    env = {
        "HF_ENDPOINT": hub.url,
        "HF_HOME": str(home),
        "HF_HUB_CACHE": hub_cache,
        "HF_TOKEN": TEST_TOKEN,
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_UPDATE_CHECK": "1",
        "L2V_HUB_RETRIES": str(FAST_RETRIES.attempts - 1),
        "L2V_HUB_BACKOFF": str(FAST_RETRIES.backoff),
        "L2V_HUB_MAX_DELAY": str(FAST_RETRIES.max_delay),
        "L2V_HUB_TIMEOUT": str(FAST_RETRIES.timeout),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in (
        "HF_HUB_OFFLINE",
        "TRANSFORMERS_OFFLINE",
        "HUGGINGFACE_HUB_CACHE",
        "HF_TOKEN_PATH",
        "HF_ASSETS_CACHE",
        "HF_XET_CACHE",
        "HUGGINGFACE_CO_STAGING",
    ):
        monkeypatch.delenv(name, raising=False)
    values = {
        "ENDPOINT": hub.url,
        "HUGGINGFACE_CO_URL_TEMPLATE": hub.url + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_HOME": str(home),
        "HF_HUB_CACHE": hub_cache,
        "HUGGINGFACE_HUB_CACHE": hub_cache,
        "HF_ASSETS_CACHE": str(home / "assets"),
        "HF_XET_CACHE": str(home / "xet"),
        "HF_TOKEN_PATH": str(home / "token"),
        "HF_STORED_TOKENS_PATH": str(home / "stored_tokens"),
        "HF_HUB_OFFLINE": False,
        "HF_HUB_DISABLE_XET": True,
        "HF_HUB_DISABLE_TELEMETRY": True,
    }
    # raising=False: older huggingface_hub releases lack some of these (e.g. the Xet ones)
    for name, value in values.items():
        monkeypatch.setattr(constants, name, value, raising=False)
    monkeypatch.setattr(retry, "POLICY", FAST_RETRIES)
    for module_name, names in _COPIES.items():
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        for name in names:
            monkeypatch.setattr(module, name, values[name], raising=False)


def go_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """HF_HUB_OFFLINE=1 for this process (huggingface_hub read it at import) and subprocesses."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubServer]:
    """A running test Hub that huggingface_hub talks to; stopped after the test."""
    server = HubServer().start()
    point_client_at(server, tmp_path / "hf_home", monkeypatch)
    try:
        yield server
    finally:
        server.stop()
        # Pooled keep-alive connections point at a server that is gone.
        close_session = getattr(huggingface_hub, "close_session", None)
        if close_session is not None:
            close_session()
    assert not server.errors, "the test Hub failed on requests:\n" + "\n".join(server.errors)
