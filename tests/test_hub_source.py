"""Semantic-version order, the default release, and which source a call uses."""

from __future__ import annotations

from pathlib import Path

import pytest

from l2v_hub.hub import Store, open_source
from l2v_hub.hub.hubsource import HubSource
from l2v_hub.hub.source import Release, highest_version, is_commit, version_key


def test_semver_precedence() -> None:
    order = [
        "0.9.0",
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "1.2.0",
        "1.10.0",
        "2.0.0",
    ]
    assert sorted(reversed(order), key=version_key) == order
    assert version_key("1.0.0+build.7") == version_key("1.0.0")
    with pytest.raises(ValueError, match="not a semantic version"):
        version_key("1.0")


def test_the_default_release_skips_prereleases_unless_alone() -> None:
    assert highest_version(["1.0.0", "1.10.0", "2.0.0-rc.1"]) == "1.10.0"
    assert highest_version(["2.0.0-rc.1", "2.0.0-rc.2"]) == "2.0.0-rc.2"
    assert highest_version([]) is None


def test_commits_and_releases() -> None:
    assert is_commit("a" * 40) and not is_commit("A" * 40) and not is_commit("v1.0.0")
    release = Release("org/p", "1.2.0", "b" * 40)
    assert release.tag == "v1.2.0" and str(release) == "org/p@v1.2.0 (commit bbbbbbbbbbbb)"


def test_open_source_picks_the_store_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("L2V_HUB_STORE", raising=False)
    assert isinstance(open_source(), HubSource)
    assert isinstance(open_source(tmp_path), Store)
    monkeypatch.setenv("L2V_HUB_STORE", str(tmp_path))
    source = open_source()
    assert isinstance(source, Store) and source.root == tmp_path
    assert open_source(source) is source
