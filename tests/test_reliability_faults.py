"""The fault matrix: every step of publish and pull x (HTTP 500, 429 + Retry-After, a connection cut
mid-body, a response slower than the timeout), injected by the test Hub, against the real client.

Publish, per cell: a fault that happens once is absorbed in one run; a fault that lasts makes the
run succeed or fail with a one-line error (exit 1), never leaving a version half-visible, and the
same command run again completes it (exit 0, one commit, same content). Pull, per cell: a fault
that happens once is retried; one that lasts is served from the cache of the same revision, or
fails naming the repo, the revision and the last error.

Set L2V_HUB_FAULT_TABLE=path.md to write the matrix with each cell's outcome (docs/reliability.md).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from itertools import product
from pathlib import Path

import huggingface_hub
import pytest
from click.testing import CliRunner
from conftest import random_pack
from hubserver import HubServer
from huggingface_hub import HfApi, constants
from huggingface_hub import file_download as hf_file_download
from huggingface_hub.utils import _http as hf_http

from l2v_hub import Pack
from l2v_hub.cli import main
from l2v_hub.errors import HubError
from l2v_hub.hub import publish, pull, retry

REPO = "l2v-test/tiny-pack"
PUBLISH_STEPS = ("create", "preupload", "upload", "commit", "tag")
PULL_STEPS = ("info", "resolve", "download")
FAULTS = ("500", "429", "drop", "slow")
TIMEOUT, SLOW = 0.3, 0.6  # a "slow" answer comes SLOW seconds late, past the TIMEOUT
LASTING = 1000  # a fault that outlasts every retry of a run
OUTCOMES: dict[tuple[str, str, str], str] = {}  # (case, step, fault) -> what happened


class _QuickSleep:
    """huggingface_hub's own backoff (1 s doubling, Retry-After + 1 s) shrunk to milliseconds:
    its retries still happen, in the same number, only the waits are shorter."""

    def __getattr__(self, name: str) -> object:
        return getattr(time, name)

    @staticmethod
    def sleep(seconds: float) -> None:
        time.sleep(min(seconds, 0.01))


@pytest.fixture
def faulty(hub: HubServer, monkeypatch: pytest.MonkeyPatch) -> HubServer:
    """The test Hub, with l2v-hub's timeout at TIMEOUT and every client-side wait shortened."""
    monkeypatch.setattr(retry, "POLICY", retry.RetryPolicy(3, 0.01, 0.05, TIMEOUT))
    monkeypatch.setattr(constants, "HF_HUB_DOWNLOAD_TIMEOUT", TIMEOUT)  # the file GET's own timeout
    monkeypatch.setattr(hf_http, "time", _QuickSleep())
    monkeypatch.setattr(hf_file_download, "time", _QuickSleep())
    huggingface_hub.close_session()  # the next client is made with the timeout above
    return hub


@pytest.fixture(scope="module", autouse=True)
def fault_table() -> Iterator[None]:
    yield
    target = os.environ.get("L2V_HUB_FAULT_TABLE")
    if target and OUTCOMES:
        Path(target).write_text(_table())


def _table() -> str:
    lines = []
    for case in dict.fromkeys(c for c, _, _ in OUTCOMES):
        steps = list(dict.fromkeys(s for c, s, _ in OUTCOMES if c == case))
        lines += [f"**{case}**", "", "| step | " + " | ".join(FAULTS) + " |"]
        lines.append("|---" * (len(FAULTS) + 1) + "|")
        for step in steps:
            cells = [OUTCOMES.get((case, step, f), "not run") for f in FAULTS]
            lines.append(f"| {step} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def matrix(steps: tuple[str, ...]) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Parametrize a test over ``steps`` x ``FAULTS``."""
    return lambda test: pytest.mark.parametrize(("step", "fault"), list(product(steps, FAULTS)))(test)


def inject(hub: HubServer, step: str, fault: str, times: int) -> None:
    if fault == "500":
        hub.fail(step, status=500, times=times)
    elif fault == "429":
        hub.fail(step, status=429, retry_after=1, times=times)
    elif fault == "drop":
        hub.drop(step, times=times)
    else:
        hub.slow(step, SLOW, times=times)


def assert_published_once(hub: HubServer, pack: Pack, commit: str) -> None:
    """v1.0.0 is tagged on `commit`, made by exactly one publish commit, and holds `pack`."""
    hub.clear_faults()
    api = HfApi()
    assert {t.name: t.target_commit for t in api.list_repo_refs(REPO).tags} == {"v1.0.0": commit}
    titles = [c.title for c in api.list_repo_commits(REPO)]
    assert titles.count("Publish v1.0.0") == 1 and hub.head(REPO) == commit
    assert pull(REPO, "v1.0.0").pack == pack


def assert_not_half_visible(hub: HubServer, pack: Pack) -> None:
    """Either no v1.0.0 tag, or a tag on a commit that holds the whole pack."""
    hub.clear_faults()
    if hub.head(REPO, "v1.0.0") is not None:  # the test Hub's own view: no client involved
        assert pull(REPO, "v1.0.0").pack == pack


# --- publish -------------------------------------------------------------------------------------


@matrix(PUBLISH_STEPS)
def test_publish_absorbs_a_fault_that_happens_once(faulty: HubServer, step: str, fault: str) -> None:
    pack = random_pack()
    inject(faulty, step, fault, times=1)
    release = publish(pack, REPO)
    assert faulty.faults_left(step) == 0  # the fault did hit this step
    assert release.version == "1.0.0"
    assert_published_once(faulty, pack, release.commit)
    OUTCOMES[("publish, fault once", step, fault)] = "ok in one run"


@matrix(PUBLISH_STEPS)
def test_publish_under_a_lasting_fault_is_completed_by_running_it_again(
    faulty: HubServer, step: str, fault: str, tmp_path: Path
) -> None:
    pack = random_pack()
    folder = str(pack.save_pretrained(tmp_path / "pack"))
    command = ["publish", folder, "--repo", REPO, "--json"]
    inject(faulty, step, fault, times=LASTING)
    first = CliRunner().invoke(main, command)
    assert faulty.faults_left(step) < LASTING
    assert "Traceback" not in first.output and first.exit_code in (0, 1), first.output
    if first.exit_code == 1:
        message = first.stderr.strip().splitlines()[-1]
        assert message.startswith("Error: ") and REPO in message, first.output
    assert_not_half_visible(faulty, pack)
    again = CliRunner().invoke(main, command)
    assert again.exit_code == 0, again.output
    commit = again.stdout.split('"commit": "')[1][:40]
    assert_published_once(faulty, pack, commit)
    OUTCOMES[("publish, fault lasts", step, fault)] = (
        "ok in one run" if first.exit_code == 0 else "exit 1, re-run: ok"
    )


def test_other_content_under_a_version_is_refused_after_a_failed_run(faulty: HubServer) -> None:
    pack, other = random_pack(seed=0), random_pack(seed=1)
    faulty.fail("tag", times=LASTING)
    with pytest.raises(HubError, match=r"tagging l2v-test/tiny-pack@v1\.0\.0"):
        publish(pack, REPO)
    faulty.clear_faults()
    release = publish(pack, REPO)  # completes the first run: tags its commit
    with pytest.raises(HubError, match=r"v1\.0\.0 is already published.*bump the version"):
        publish(other, REPO)
    assert_published_once(faulty, pack, release.commit)


# --- pull ----------------------------------------------------------------------------------------


@pytest.fixture
def published(faulty: HubServer) -> tuple[Pack, str]:
    pack = random_pack()
    release = publish(pack, REPO)
    faulty.reset_counts()
    return pack, release.commit


@matrix(PULL_STEPS)
def test_pull_retries_a_fault_that_happens_once(
    faulty: HubServer, published: tuple[Pack, str], step: str, fault: str
) -> None:
    pack, commit = published
    inject(faulty, step, fault, times=1)
    pulled = pull(REPO, "v1.0.0")
    assert faulty.faults_left(step) == 0
    assert pulled.pack == pack and pulled.release.commit == commit
    OUTCOMES[("pull, fault once", step, fault)] = "ok"


@matrix(PULL_STEPS)
def test_pull_under_a_lasting_fault_uses_the_cached_copy_of_that_revision(
    faulty: HubServer, published: tuple[Pack, str], step: str, fault: str
) -> None:
    pack, commit = published
    folder = pull(REPO, "v1.0.0").folder
    files = {p.name: p.read_bytes() for p in folder.iterdir()}
    inject(faulty, step, fault, times=LASTING)
    pulled = pull(REPO, "v1.0.0")
    assert pulled.pack == pack and pulled.release.commit == commit
    assert {p.name: p.read_bytes() for p in pulled.folder.iterdir()} == files
    asked = faulty.faults_left(step) < LASTING
    OUTCOMES[("pull, fault lasts, cached", step, fault)] = (
        "ok (cache)" if asked else "ok (cache; step not reached)"
    )


@matrix(PULL_STEPS)
def test_pull_under_a_lasting_fault_with_nothing_cached_names_repo_revision_and_error(
    faulty: HubServer, published: tuple[Pack, str], step: str, fault: str
) -> None:
    pack, _ = published
    inject(faulty, step, fault, times=LASTING)
    try:
        pulled = pull(REPO, "v1.0.0")
    except HubError as exc:
        message = str(exc)
        assert REPO in message and "v1.0.0" in message, message
        assert any(word in message for word in ("HTTP", "Error", "Timeout")), message
        assert "\n" not in message
        OUTCOMES[("pull, fault lasts, nothing cached", step, fault)] = "fails, names repo@rev + error"
    else:  # the client waits out a slow answer on its own retry (60 s timeout)
        assert pulled.pack == pack and fault == "slow"
        OUTCOMES[("pull, fault lasts, nothing cached", step, fault)] = "ok (client waits it out)"
    assert faulty.faults_left(step) < LASTING
