"""Pack format v2: round trip (scale and calibration included), v1 packs still read, and every
corruption refused with a message naming it."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import calibration_record, random_pack
from safetensors.torch import load_file

from l2v_hub import Pack, PackError
from l2v_hub.metadata import SCHEMA_VERSION, Scale


def saved(pack: Pack, tmp_path: Path) -> Path:
    return pack.save_pretrained(tmp_path / "pack")


def edit_json(folder: Path, change: Callable[[dict], None]) -> None:
    meta = json.loads((folder / "pack.json").read_text())
    change(meta)
    (folder / "pack.json").write_text(json.dumps(meta))


def test_round_trip_is_equal(pack: Pack, tmp_path: Path) -> None:
    folder = saved(pack, tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md", "directions.safetensors", "pack.json", "stats.json"
    ]
    loaded = Pack.from_pretrained(folder)
    assert loaded == pack
    assert loaded.directions.dtype == torch.float32
    assert loaded is not pack and loaded.target == pack.target


def test_files_on_disk_follow_the_format(pack: Pack, tmp_path: Path) -> None:
    folder = saved(pack, tmp_path)
    tensors = load_file(folder / "directions.safetensors")
    assert sorted(tensors, key=lambda k: int(k.split(".")[1])) == [f"layers.{i}" for i in range(6)]
    assert all(t.shape == (48,) and t.dtype == torch.float32 for t in tensors.values())
    meta = json.loads((folder / "pack.json").read_text())
    assert meta["schema_version"] == SCHEMA_VERSION == 2
    assert meta["scale"] == {"measure": "token_spread", "values": [1.0] * 6}
    assert "calibration" not in meta  # not calibrated: the key is absent, not null
    assert meta["hook"] == {
        "op": "norm_preserving_add",
        "positions": "first_and_generated",
        "site": "decoder_block_output",
        "layer_index_base": 0,
    }
    assert set(meta["files"]) == {"directions.safetensors", "README.md", "stats.json"}
    assert meta["files"]["directions.safetensors"]["size"] == os.path.getsize(
        folder / "directions.safetensors"
    )
    assert meta["created"].endswith("Z")
    card = (folder / "README.md").read_text()
    front = card.split("---")[1]
    for line in [
        "library_name: l2v-hub",
        'base_model: "tiny/vlm"',
        "base_model_relation: adapter",
        '- "l2v-cot"',
        '- "steering-vector"',
        '- "activation-steering"',
    ]:
        assert line in front


def flip_byte(folder: Path) -> None:
    path = folder / "directions.safetensors"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01
    path.write_bytes(bytes(data))


def truncate(folder: Path) -> None:
    path = folder / "directions.safetensors"
    path.write_bytes(path.read_bytes()[:-10])


def wrong_hidden(folder: Path) -> None:
    edit_json(folder, lambda m: m["target"].update(hidden_size=64))


def unknown_schema(folder: Path) -> None:
    edit_json(folder, lambda m: m.update(schema_version=SCHEMA_VERSION + 1))


def escaping_file(folder: Path) -> None:
    (folder.parent / "outside.bin").write_bytes(b"x")
    edit_json(folder, lambda m: m["files"].update({"../outside.bin": m["files"]["README.md"]}))


def absolute_file(folder: Path) -> None:
    edit_json(folder, lambda m: m["files"].update({"/etc/passwd": m["files"]["README.md"]}))


def missing_key(key: str) -> Callable[[Path], None]:
    def change(folder: Path) -> None:
        def drop(meta: dict) -> None:
            *parents, last = key.split(".")
            node = meta
            for part in parents:
                node = node[part]
            del node[last]

        edit_json(folder, drop)

    return change


def nan_direction(folder: Path) -> None:
    # A consistent pack (hashes re-computed) whose tensor holds a NaN: refused on content.
    pack = Pack.from_pretrained(folder)
    pack.directions[2, 5] = float("nan")
    pack.validate = lambda: pack  # type: ignore[method-assign]
    Pack.save_pretrained(pack, folder)


def symlink_out(folder: Path) -> None:
    outside = folder.parent / "elsewhere.json"
    outside.write_text((folder / "stats.json").read_text())
    (folder / "stats.json").unlink()
    (folder / "stats.json").symlink_to(outside)


CASES = [
    (flip_byte, ["directions.safetensors", "sha256"]),
    (truncate, ["directions.safetensors", "size"]),
    (missing_key("defaults.layers"), ["pack.json", "defaults.layers"]),
    (missing_key("target.model_id"), ["pack.json", "target.model_id"]),
    (missing_key("schema_version"), ["schema_version"]),
    (wrong_hidden, ["hidden_size", "64"]),
    (nan_direction, ["directions.safetensors", "layers.2", "NaN"]),
    (unknown_schema, ["schema_version", "upgrade l2v-hub"]),
    (escaping_file, ["../outside.bin", "inside the pack folder"]),
    (absolute_file, ["/etc/passwd", "inside the pack folder"]),
    (symlink_out, ["stats.json", "outside the pack folder"]),
    (lambda f: (f / "pack.json").unlink(), ["pack.json", "missing"]),
    (lambda f: (f / "pack.json").write_text("{not json"), ["pack.json", "not valid JSON"]),
    (lambda f: edit_json(f, lambda m: m["hook"].update(op="multiply")), ["hook.op", "'add'"]),
    (lambda f: edit_json(f, lambda m: m["defaults"].update(layers=[99])), ["defaults.layers", "99"]),
    (lambda f: edit_json(f, lambda m: m.update(version="v1")), ["version", "semantic"]),
    (
        lambda f: edit_json(f, lambda m: m["target"].update(model_id="/home/me/model")),
        ["target.model_id", "not a local path"],
    ),
    (lambda f: edit_json(f, lambda m: m["defaults"].update(strength=float("nan"))), ["pack.json"]),
    # v2: the scale is required, one finite positive s_i per target block.
    (missing_key("scale"), ["pack.json", "missing key 'scale'"]),
    (missing_key("scale.measure"), ["scale.measure"]),
    (lambda f: edit_json(f, lambda m: m["scale"].update(measure="norm")), ["scale.measure", "cot_norm"]),
    (lambda f: edit_json(f, lambda m: m["scale"].update(values=[1.0] * 5)),
     ["scale.values", "5 entries", "num_layers is 6"]),
    (lambda f: edit_json(f, lambda m: m["scale"].update(values=[1.0] * 5 + [0.0])), ["scale.values", "positive"]),
    (lambda f: edit_json(f, lambda m: m["scale"].update(values=[1.0] * 5 + [-2.0])), ["scale.values"]),
    (lambda f: edit_json(f, lambda m: m["scale"].update(values=[1.0] * 5 + [True])), ["scale.values"]),
    (lambda f: edit_json(f, lambda m: m["scale"].update(values=[1.0] * 5 + ["1"])), ["scale.values"]),
    (lambda f: edit_json(f, lambda m: m["scale"].update(values=[1.0] * 5 + [1e39])),
     ["scale.values[5]", "float32"]),
    (lambda f: edit_json(f, lambda m: m["scale"].update(values=[])), ["scale.values"]),
    (lambda f: edit_json(f, lambda m: m["scale"].update(values=1.0)), ["scale.values"]),
    (lambda f: (f / "pack.json").write_text((f / "pack.json").read_text().replace("[\n      1.0", "[\n      Infinity")),
     ["pack.json", "Infinity"]),
    # A scale check must not trip over a broken target (it reads target.num_layers).
    (missing_key("target"), ["pack.json", "missing key 'target'"]),
    (lambda f: edit_json(f, lambda m: m["target"].update(num_layers="6")), ["target.num_layers"]),
]


@pytest.mark.parametrize(("corrupt", "words"), CASES, ids=lambda c: getattr(c, "__name__", None))
def test_corruption_is_refused_with_a_named_error(
    pack: Pack, tmp_path: Path, corrupt: Callable[[Path], None], words: list[str]
) -> None:
    folder = saved(pack, tmp_path)
    corrupt(folder)
    with pytest.raises(PackError) as info:
        Pack.from_pretrained(folder)
    for word in words:
        assert word in str(info.value), str(info.value)


def test_pack_error_is_a_value_error() -> None:
    assert issubclass(PackError, ValueError)


def test_hub_cache_snapshot_links_into_its_blob_store_are_allowed(pack: Pack, tmp_path: Path) -> None:
    # huggingface_hub's cache layout: snapshots/<sha>/<file> -> ../../blobs/<hash>
    repo = tmp_path / "models--org--pack"
    snap = repo / "snapshots" / ("a" * 40)
    built = saved(pack, tmp_path)
    (repo / "blobs").mkdir(parents=True)
    snap.mkdir(parents=True)
    for f in built.iterdir():
        blob = repo / "blobs" / f.name
        blob.write_bytes(f.read_bytes())
        (snap / f.name).symlink_to(Path("../..") / "blobs" / f.name)
    assert Pack.from_pretrained(snap) == pack


def test_xet_downloads_linked_into_the_cache_wide_blob_store_are_allowed(
    pack: Pack, tmp_path: Path
) -> None:
    # With Xet, huggingface_hub links blobs/<etag> on into <cache>/blobs/<xx>/<hash>, a store
    # shared by every repo of the cache and marked by a .huggingface-shared-blobs file.
    cache = tmp_path / "hub"
    repo, shared = cache / "models--org--pack", cache / "blobs"
    snap = repo / "snapshots" / ("a" * 40)
    built = saved(pack, tmp_path)
    for folder in (repo / "blobs", snap, shared / "ab"):
        folder.mkdir(parents=True)
    for f in built.iterdir():
        (shared / "ab" / f.name).write_bytes(f.read_bytes())
        (repo / "blobs" / f.name).symlink_to(Path("../..") / "blobs" / "ab" / f.name)
        (snap / f.name).symlink_to(Path("../..") / "blobs" / f.name)
    with pytest.raises(PackError, match="outside the pack folder"):
        Pack.from_pretrained(snap)  # without the marker, that folder is just somewhere else
    (shared / ".huggingface-shared-blobs").write_text("1")
    assert Pack.from_pretrained(snap) == pack


def test_save_refuses_an_invalid_pack(tmp_path: Path) -> None:
    bad = random_pack()
    bad.directions = bad.directions * 2
    with pytest.raises(PackError, match="unit norm"):
        bad.save_pretrained(tmp_path / "p")
    assert not (tmp_path / "p" / "pack.json").exists()


def test_shape_mismatch_between_target_and_directions_is_refused() -> None:
    bad = random_pack(hidden_size=48)
    bad.directions = bad.directions[:, :32]
    with pytest.raises(PackError, match=r"target.hidden_size=48"):
        bad.validate()


def test_missing_folder_is_a_pack_error(tmp_path: Path) -> None:
    with pytest.raises(PackError, match="no pack folder"):
        Pack.from_pretrained(tmp_path / "nope")


def test_the_same_pack_always_serializes_to_the_same_bytes(pack: Pack, tmp_path: Path) -> None:
    # safetensors orders __metadata__ keys at random; the pack's hashes must not depend on it.
    digests = {
        (pack.save_pretrained(tmp_path / str(i)) / "pack.json").read_bytes() for i in range(12)
    }
    assert len(digests) == 1
    assert Pack.from_pretrained(tmp_path / "0") == pack


def v1_folder(pack: Pack, tmp_path: Path) -> Path:
    """A pack folder as l2v-hub 0.x wrote it: schema_version 1, no scale (the push was relative)."""
    folder = saved(pack, tmp_path)
    edit_json(folder, lambda m: (m.update(schema_version=1), m.pop("scale")))
    return folder


def test_a_v1_pack_is_still_read_as_v1(pack: Pack, tmp_path: Path) -> None:
    loaded = Pack.from_pretrained(v1_folder(pack, tmp_path))
    assert loaded.schema_version == 1 and loaded.scale is None and loaded.calibration is None
    assert torch.equal(loaded.directions, pack.directions) and loaded.defaults == pack.defaults
    # It saves back as v1: reading a pack never upgrades its meaning.
    again = json.loads((loaded.save_pretrained(tmp_path / "again") / "pack.json").read_text())
    assert again["schema_version"] == 1 and "scale" not in again
    assert Pack.from_pretrained(tmp_path / "again") == loaded


def test_a_v1_pack_json_with_a_calibration_or_scale_key_stays_v1(pack: Pack, tmp_path: Path) -> None:
    # v1 had no such keys: ignored, so a v1 pack cannot pass for a calibrated v2 one.
    folder = v1_folder(pack, tmp_path)
    edit_json(folder, lambda m: m.update(scale={"measure": "cot_norm", "values": [1.0] * 6},
                                         calibration=calibration_record(pack).to_json()))
    loaded = Pack.from_pretrained(folder)
    assert loaded.schema_version == 1 and loaded.scale is None and loaded.calibration is None


def test_validate_ties_the_scale_to_the_format_version(pack: Pack) -> None:
    with pytest.raises(PackError, match="missing key 'scale'"):
        replace(pack, scale=None).validate()
    with pytest.raises(PackError, match="format v1 has no 'scale'"):
        replace(pack, schema_version=1).validate()
    replace(pack, schema_version=1, scale=None).validate()


def test_an_uncalibrated_pack_round_trips_with_null_values(tmp_path: Path) -> None:
    pack = random_pack(scale=None)
    folder = saved(pack, tmp_path)
    assert json.loads((folder / "pack.json").read_text())["scale"] == {"measure": "token_spread",
                                                                      "values": None}
    loaded = Pack.from_pretrained(folder)
    assert loaded == pack and loaded.scale == Scale("token_spread", None)


def test_an_imported_scale_must_carry_its_values(pack: Pack) -> None:
    replace(pack, scale=Scale("imported", (2.0,) * 6)).validate()
    with pytest.raises(PackError, match=r"'scale.values' must be a list of positive numbers for measure 'imported'"):
        replace(pack, scale=Scale("imported", None)).validate()


def test_a_calibrated_pack_round_trips_with_its_calibration_equal(pack: Pack, tmp_path: Path) -> None:
    calibrated = replace(pack, scale=Scale("cot_norm", tuple(0.5 + i for i in range(6))),
                         calibration=calibration_record(pack))
    loaded = Pack.from_pretrained(saved(calibrated, tmp_path))
    assert loaded == calibrated
    assert loaded.calibration == calibrated.calibration
    assert loaded.scale == Scale("cot_norm", (0.5, 1.5, 2.5, 3.5, 4.5, 5.5))


def drop_calibration_key(key: str) -> Callable[[dict], None]:
    return lambda m: m["calibration"].pop(key)


@pytest.mark.parametrize(("change", "words"), [
    (drop_calibration_key("model_id"), ["calibration.model_id"]),
    (drop_calibration_key("grid"), ["calibration.grid"]),
    (lambda m: m["calibration"].update(model_id="/home/me/model"), ["calibration.model_id", "local path"]),
    (lambda m: m["calibration"].update(positions="last"), ["calibration.positions"]),
    (lambda m: m["calibration"].update(scale_measure="norm"), ["calibration.scale_measure"]),
    (lambda m: m["calibration"].update(budget="0.1"), ["calibration.budget"]),
    (lambda m: m["calibration"]["grid"][1].update(perplexity=None), ["calibration.grid.1.perplexity"]),
    (lambda m: m["calibration"]["grid"][0].update(positions="every"), ["calibration.grid.0.positions"]),
    (lambda m: m["calibration"]["baseline"].update(perplexity=True), ["calibration.baseline.perplexity"]),
    (lambda m: m["calibration"]["control"].pop("perplexity"), ["calibration.control.perplexity"]),
    (lambda m: m["calibration"]["problems"].update(count=-1), ["calibration.problems.count"]),
    (lambda m: m["calibration"].update(cosine_own={"3": "high"}), ["calibration.cosine_own"]),
    (lambda m: m["calibration"].update(control_seed=1.5), ["calibration.control_seed"]),
    (lambda m: m.update(calibration=[]), ["calibration", "object"]),
], ids=lambda x: None)
def test_a_broken_calibration_is_refused_naming_the_field(
    pack: Pack, tmp_path: Path, change: Callable[[dict], None], words: list[str]
) -> None:
    calibrated = replace(pack, scale=Scale("cot_norm", (1.0,) * 6), calibration=calibration_record(pack))
    folder = saved(calibrated, tmp_path)
    edit_json(folder, change)
    with pytest.raises(PackError) as info:
        Pack.from_pretrained(folder)
    for word in words:
        assert word in str(info.value), str(info.value)


def test_a_calibration_must_come_with_the_s_i_it_measured(pack: Pack, tmp_path: Path) -> None:
    record = calibration_record(pack)
    with pytest.raises(PackError, match=r"'calibration' needs 'scale.values'"):
        replace(pack, scale=Scale("cot_norm", None), calibration=record).validate()
    with pytest.raises(PackError, match=r"'scale.measure' is 'token_spread'.*'cot_norm'"):
        replace(pack, scale=Scale("token_spread", (1.0,) * 6), calibration=record).validate()
    # Also when only pack.json says so: a hand-edited folder is refused on load.
    folder = saved(replace(pack, scale=Scale("cot_norm", (1.0,) * 6), calibration=record), tmp_path)
    edit_json(folder, lambda m: m["scale"].update(values=None))
    with pytest.raises(PackError, match=r"needs 'scale\.values'"):
        Pack.from_pretrained(folder)


def test_a_hostile_key_is_escaped_in_the_one_line_error(pack: Pack, tmp_path: Path) -> None:
    # Found by tests/test_reliability_hostile.py: a file name holding a newline split the message.
    folder = saved(pack, tmp_path)
    edit_json(folder, lambda m: m["files"].update({"a\nb\ud800": {"size": 1}}))
    with pytest.raises(PackError) as info:
        Pack.from_pretrained(folder)
    assert "\n" not in str(info.value) and "files.a\\nb" in str(info.value)


def test_a_pack_json_without_method_token_reads_as_last(pack: Pack, tmp_path: Path) -> None:
    """Older packs may lack method.token: it was always the last token then."""
    read = replace(pack, method=replace(pack.method, token="response_mean"))
    folder = saved(read, tmp_path)
    assert json.loads((folder / "pack.json").read_text())["method"]["token"] == "response_mean"
    assert Pack.from_pretrained(folder).method.token == "response_mean"
    edit_json(folder, lambda m: m["method"].pop("token"))
    assert Pack.from_pretrained(folder).method.token == "last"
    edit_json(folder, lambda m: m["method"].update(token=3))
    with pytest.raises(PackError, match=r"'method\.token' must be a non-empty string"):
        Pack.from_pretrained(folder)
