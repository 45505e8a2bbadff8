"""Hostile and broken input: only ``PackError`` ever leaves ``Pack.from_pretrained``.

Hypothesis generates pack.json documents (wrong types, missing and extra keys, huge numbers,
unicode, deep nesting, raw bytes) and safetensors files (bad header lengths, a header longer than
the file, an 8-GB declared header, wrong dtypes and shapes, overlapping or out-of-range offsets,
extra and missing tensors); each is written into a pack folder whose pack.json records its true
sha256 and size, so the parser itself is reached. The suites run ``EXAMPLES`` cases in all
(derandomized, no example database: the same cases on every run). Then names and links that leave
the folder, the CLI given bad arguments, missing files and unreadable folders, and ``patch``
given bad strengths, layers, ops and positions (refused before the model is touched).
"""

from __future__ import annotations

import hashlib
import json
import math
import resource
import struct
from pathlib import Path
from typing import Any

import httpx2
import pytest
import torch
from click.testing import CliRunner
from conftest import random_pack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tiny_models import HIDDEN, LAYERS, build

import l2v_hub
from l2v_hub import Defaults, Pack
from l2v_hub.cli import main
from l2v_hub.errors import L2VHubError, PackError
from l2v_hub.hub import hubsource
from l2v_hub.loader.patch import MAX_STRENGTH
from l2v_hub.metadata import OPS, POSITIONS

EXAMPLES = {"pack_json": 2500, "raw": 2500, "safetensors": 3500, "names": 1500}
assert sum(EXAMPLES.values()) >= 10_000
CI = {
    "deadline": None,
    "derandomize": True,
    "database": None,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
}
PACK = random_pack(hidden_size=4, num_layers=2)
TINY_PACK = random_pack(HIDDEN, LAYERS)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A valid tiny pack folder, and its pack.json."""
    folder = PACK.save_pretrained(tmp_path_factory.mktemp("pack") / "pack")
    return folder, json.loads((folder / "pack.json").read_bytes())


def only_pack_errors(folder: Path) -> None:
    try:
        Pack.from_pretrained(folder)
    except PackError as exc:
        assert str(exc) and "\n" not in str(exc)[:200]


def paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path of a JSON document (lists by index)."""
    found = [prefix] if prefix else []
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    for key, value in items:
        found += paths(value, (*prefix, key))
    return found


json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(st.characters(exclude_categories=()), max_size=12),  # surrogates included
    st.sampled_from(["1.0.0", "a" * 64, "x" * 300, "../../etc", "norm_preserving_add"]),
)
json_value = st.recursive(
    json_leaf,
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids, max_size=3),
    max_leaves=8,
)


@settings(max_examples=EXAMPLES["pack_json"], **CI)
@given(data=st.data())
def test_mutated_pack_json_raises_only_pack_errors(
    base: tuple[Path, dict[str, Any]], tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    folder, valid = base
    doc = json.loads(json.dumps(valid))
    for _ in range(data.draw(st.integers(1, 4), label="mutations")):
        where = data.draw(st.sampled_from(paths(doc) or [()]), label="path")
        parent = doc
        for key in where[:-1]:
            parent = parent[key]
        action = data.draw(st.sampled_from(["replace", "delete", "extra"]), label="action")
        if not where or not isinstance(parent, dict | list):
            break
        if action == "delete" and isinstance(parent, dict):
            del parent[where[-1]]
        elif action == "extra" and isinstance(parent, dict):
            parent[data.draw(st.text(max_size=8))] = data.draw(json_value)
        else:
            parent[where[-1]] = data.draw(json_value, label="value")
    text = json.dumps(doc, ensure_ascii=data.draw(st.booleans()))  # NaN and Infinity included
    (folder / "pack.json").write_bytes(text.encode("utf-8", "surrogatepass"))
    only_pack_errors(folder)


@settings(max_examples=EXAMPLES["raw"], **CI)
@given(raw=st.binary(max_size=300) | st.integers(1, 200_000).map(lambda n: b"[" * n + b"]" * n))
def test_raw_bytes_and_deep_nesting_as_pack_json_raise_only_pack_errors(
    base: tuple[Path, dict[str, Any]], raw: bytes
) -> None:
    folder, _ = base
    (folder / "pack.json").write_bytes(raw)
    only_pack_errors(folder)


def test_a_deeply_nested_field_is_a_pack_error(base: tuple[Path, dict[str, Any]]) -> None:
    folder, valid = base
    text = json.dumps({**valid, "created": "HERE"}).replace('"HERE"', "[" * 100_000 + "]" * 100_000)
    (folder / "pack.json").write_text(text)
    with pytest.raises(PackError, match="not valid JSON"):
        Pack.from_pretrained(folder)


# --- safetensors ---------------------------------------------------------------------------------

DTYPES = ["F32", "F64", "F16", "BF16", "I64", "I32", "U8", "BOOL", "F8_E4M3", "C64", "XYZ", ""]


@st.composite
def safetensors_bytes(draw: st.DrawFn) -> bytes:
    """A directions file: valid, then bent (tensors, dtypes, shapes, offsets, header length)."""
    tensors: dict[str, Any] = {}
    offset = 0
    for i in range(PACK.target.num_layers):
        size = 4 * PACK.target.hidden_size
        tensors[f"layers.{i}"] = {"dtype": "F32", "shape": [4], "data_offsets": [offset, offset + size]}
        offset += size
    for _ in range(draw(st.integers(0, 4))):
        name = draw(st.sampled_from([*tensors, "layers.9", "extra", "__metadata__", "layers.-1"]))
        field = draw(st.sampled_from(["dtype", "shape", "data_offsets", "whole", "drop"]))
        entry = tensors.get(name)
        if not isinstance(entry, dict):
            entry = tensors[name] = {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}
        if field == "drop":
            tensors.pop(name)
        elif field == "dtype":
            entry["dtype"] = draw(st.sampled_from(DTYPES))
        elif field == "shape":
            entry["shape"] = draw(st.lists(st.integers(-2, 2**40), max_size=3))
        elif field == "data_offsets":  # overlapping, reversed, past the end, huge
            entry["data_offsets"] = draw(st.lists(st.integers(-1, 2**63), min_size=0, max_size=3))
        else:
            tensors[name] = draw(json_value)
    header = json.dumps(tensors).encode() + b" " * draw(st.integers(0, 8))  # padding is legal
    data = draw(st.binary(min_size=0, max_size=offset + 16))
    length = draw(
        st.one_of(
            st.just(len(header)),
            st.integers(0, 2**64 - 1),
            st.just(8 << 30),  # an 8-GB header: must be refused, not allocated
            st.just(len(header) + len(data) + 1),  # longer than the file
        )
    )
    raw = struct.pack("<Q", length) + header + data
    return raw[: draw(st.integers(0, len(raw)))] if draw(st.booleans()) else raw


def install(folder: Path, name: str, raw: bytes, meta: dict[str, Any]) -> None:
    """Write ``raw`` as ``name`` and record its true sha256 and size, so the parser is reached."""
    (folder / name).write_bytes(raw)
    meta["files"][name] = {"sha256": hashlib.sha256(raw).hexdigest(), "size": len(raw)}
    (folder / "pack.json").write_text(json.dumps(meta))


@settings(max_examples=EXAMPLES["safetensors"], **CI)
@given(raw=safetensors_bytes())
def test_broken_safetensors_raise_only_pack_errors(
    base: tuple[Path, dict[str, Any]], raw: bytes
) -> None:
    folder, valid = base
    install(folder, "directions.safetensors", raw, json.loads(json.dumps(valid)))
    only_pack_errors(folder)


def test_an_8_gb_header_is_refused_without_allocating_it(base: tuple[Path, dict[str, Any]]) -> None:
    folder, valid = base
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB, the peak so far
    for length in (8 << 30, 2**64 - 1, 2**63):
        raw = struct.pack("<Q", length) + b'{"layers.0": {}}'
        install(folder, "directions.safetensors", raw, json.loads(json.dumps(valid)))
        with pytest.raises(PackError, match="not a valid safetensors file"):
            Pack.from_pretrained(folder)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 256 * 1024


# --- names and links that leave the folder -------------------------------------------------------

climbing = st.one_of(
    st.builds(lambda n, rest: "../" * n + rest, st.integers(1, 5), st.text(max_size=8)),
    st.builds(lambda rest: "/" + rest, st.text(max_size=12)),
    st.builds(lambda rest: "a/../../" + rest, st.text(max_size=8)),
    st.sampled_from(["C:\\x", "C:x", "\\\\server\\share", "..\\..\\x", "", ".", "a//b", "./a"]),
)


@settings(max_examples=EXAMPLES["names"], **CI)
@given(name=climbing)
def test_file_names_that_leave_the_folder_are_refused(
    base: tuple[Path, dict[str, Any]], name: str
) -> None:
    folder, valid = base
    meta = json.loads(json.dumps(valid))
    meta["files"][name] = {"sha256": "0" * 64, "size": 1}
    (folder / "pack.json").write_text(json.dumps(meta))
    with pytest.raises(PackError):
        Pack.from_pretrained(folder)


def test_a_link_out_of_the_pack_folder_is_refused(tmp_path: Path) -> None:
    folder = PACK.save_pretrained(tmp_path / "pack")
    outside = tmp_path / "outside.safetensors"
    (folder / "directions.safetensors").rename(outside)
    (folder / "directions.safetensors").symlink_to(outside)  # same bytes, elsewhere
    with pytest.raises(PackError, match="outside the pack folder"):
        Pack.from_pretrained(folder)


def test_a_snapshot_linking_into_another_repos_blobs_is_refused(tmp_path: Path) -> None:
    # The legitimate link: snapshots/<sha>/f -> ../../blobs/<hash> of the SAME repo
    # (tests/test_pack.py); another repo's blob store is outside.
    built = PACK.save_pretrained(tmp_path / "built")
    other = tmp_path / "models--evil--repo" / "blobs"
    snap = tmp_path / "models--org--pack" / "snapshots" / ("a" * 40)
    for d in (other, snap, tmp_path / "models--org--pack" / "blobs"):
        d.mkdir(parents=True, exist_ok=True)
    for f in built.iterdir():
        (other / f.name).write_bytes(f.read_bytes())
        (snap / f.name).symlink_to(Path("../../..") / "models--evil--repo" / "blobs" / f.name)
    with pytest.raises(PackError, match="outside the pack folder"):
        Pack.from_pretrained(snap)


# --- the command line ----------------------------------------------------------------------------


def _broken_folders(tmp_path: Path) -> dict[str, Path]:
    empty = tmp_path / "empty"
    empty.mkdir()
    dir_json = PACK.save_pretrained(tmp_path / "dir-json")
    (dir_json / "pack.json").unlink()
    (dir_json / "pack.json").mkdir()  # unreadable as a file
    dangling = PACK.save_pretrained(tmp_path / "dangling")
    (dangling / "directions.safetensors").unlink()
    (dangling / "directions.safetensors").symlink_to(tmp_path / "nowhere")
    return {"empty": empty, "dir-json": dir_json, "dangling": dangling}


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["no-such-command"], 2),
        (["inspect"], 2),
        (["inspect", "a", "b"], 2),
        (["pull"], 2),
        (["publish", "{tmp}/missing", "--repo", "org/name"], 2),
        (["publish", "{tmp}/empty", "--repo", "org/name", "--bogus"], 2),
        (["--bogus", "list"], 2),
        (["inspect", "{tmp}/missing"], 2),
        (["inspect", "{tmp}/empty"], 1),
        (["inspect", "{tmp}/dir-json"], 1),
        (["inspect", "{tmp}/dangling"], 1),
        (["publish", "{tmp}/empty", "--repo", "org/name", "--store", "{tmp}/store"], 1),
        (["publish", "{tmp}/dangling", "--repo", "not a repo", "--store", "{tmp}/store"], 2),
        (["pull", "not-a-ref", "--store", "{tmp}/store"], 2),
        (["pull", "org/name@main", "--store", "{tmp}/store"], 2),
        (["pull", "org/name", "--store", "{tmp}/file.txt"], 1),
        (["registry", "validate", "--index", "{tmp}/file.txt"], 1),
        (["registry", "validate", "--index", "{tmp}/missing.json"], 2),
    ],
)
def test_the_cli_given_bad_input_exits_1_or_2_with_one_line(
    tmp_path: Path, hf_offline: Path, args: list[str], code: int
) -> None:
    _broken_folders(tmp_path)
    (tmp_path / "file.txt").write_text("not a folder, not JSON")
    result = CliRunner().invoke(main, [a.replace("{tmp}", str(tmp_path)) for a in args])
    assert result.exit_code == code, result.output
    assert ("Traceback" not in result.output and result.exception is None) or isinstance(
        result.exception, SystemExit
    ), result.output
    lines = result.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("Error: "), result.output
    if code == 1:
        assert len(lines) == 1, result.output


def test_unexpected_errors_are_one_line_and_debug_shows_the_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An error type from below huggingface_hub, raised where l2v-hub does not wrap it.
    def list_models(*args: object, **kwargs: object) -> None:
        raise httpx2.ProxyError("proxy said no\nsecond line")

    monkeypatch.setattr(hubsource.HubSource, "discover", list_models)
    quiet = CliRunner().invoke(main, ["search", "org/model"])
    assert quiet.exit_code == 1 and "Traceback" not in quiet.output, quiet.output
    assert quiet.stderr.strip().splitlines() == [
        "Error: unexpected ProxyError: proxy said no (run with --debug for the traceback)"
    ]
    loud = CliRunner().invoke(main, ["--debug", "search", "org/model"])
    assert loud.exit_code == 1 and isinstance(loud.exception, httpx2.ProxyError)


# --- patch arguments -----------------------------------------------------------------------------

strengths = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**70), 2**70),
    st.sampled_from([True, "0.5", None, [0.5], complex(1, 1)]),
)
layer_args = st.one_of(
    st.lists(st.integers(-(2**40), 2**40), max_size=4),
    st.integers(-5, 5),
    st.sampled_from(["1", [1.0], [True], None, (), [0, 0]]),
)


@settings(max_examples=400, **CI)
@given(strength=strengths, layers=layer_args, op=st.text(max_size=20) | st.sampled_from(OPS),
       positions=st.text(max_size=20) | st.sampled_from(POSITIONS))
def test_patch_refuses_bad_arguments_before_touching_the_model(
    tiny_model: torch.nn.Module, strength: Any, layers: Any, op: str, positions: str
) -> None:
    try:
        handle = l2v_hub.patch(tiny_model, TINY_PACK, strength=strength, layers=layers, op=op,
                               positions=positions)
    except L2VHubError:
        assert hook_count(tiny_model) == 0 and "generate" not in vars(tiny_model)
        return
    try:  # accepted: then every argument was in range
        assert math.isfinite(handle.strength) and abs(handle.strength) <= MAX_STRENGTH
        assert all(0 <= i < LAYERS for i in handle.layers)
        assert handle.op in OPS and handle.positions in POSITIONS
    finally:
        handle.remove()


def test_an_absurd_default_strength_in_a_pack_is_refused_before_touching_the_model(
    tiny_model: torch.nn.Module, tmp_path: Path
) -> None:
    pack = random_pack(HIDDEN, LAYERS)
    pack.defaults = Defaults(strength=1e300, layers=(0,))
    folder = pack.save_pretrained(tmp_path / "absurd")  # a valid pack file: strength is a float
    with pytest.raises(L2VHubError, match="strength must be finite and within"):
        l2v_hub.patch(tiny_model, folder)
    assert hook_count(tiny_model) == 0


@pytest.fixture(scope="module")
def tiny_model() -> torch.nn.Module:
    return build("llama")


def hook_count(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
