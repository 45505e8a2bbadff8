"""l2v_hub.interop: a pack as a llama.cpp control vector and back, read with the real gguf package.

Export: GGUFReader sees architecture ``controlvector``, the model hint, the layer count, one F32
``direction.N`` per exported block holding ``strength * s_N * v_N``, and the pack's name, version
and target; the file adds what ``l2v_hub.patch`` adds under op=add, positions=all. Import: a
control vector written here the way repeng and llama.cpp write it becomes a valid pack (unit
directions, norms kept as s_i, add/all); import -> export gives the same tensors, bit for bit.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import gguf
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import random_pack
from tiny_llm import byte_tokenizer, tiny_llama

import l2v_hub
from l2v_hub.cli import main
from l2v_hub.cli.interop_cmd import SEMANTIC_LINE
from l2v_hub.errors import ArgumentError, IncompatiblePackError, L2VHubError, PackError
from l2v_hub.interop import import_control_vector, read_control_vector
from l2v_hub.loader import find_blocks
from l2v_hub.pack import Pack


def fields(path: Path) -> dict:
    return {k: f.contents() for k, f in gguf.GGUFReader(path).fields.items()}


def tensors(path: Path) -> dict[str, np.ndarray]:
    reader = gguf.GGUFReader(path)
    assert all(t.tensor_type == gguf.GGMLQuantizationType.F32 for t in reader.tensors)
    return {t.name: np.array(t.data) for t in reader.tensors}


def finish(writer: gguf.GGUFWriter) -> None:
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def write_like_repeng(path: Path, directions: dict[int, np.ndarray], hint: str = "llama") -> Path:
    """A control vector written as repeng's ControlVector.export_gguf writes it."""
    writer = gguf.GGUFWriter(path, "controlvector")
    writer.add_string("controlvector.model_hint", hint)
    writer.add_uint32("controlvector.layer_count", len(directions))
    for layer, vector in directions.items():
        writer.add_tensor(f"direction.{layer}", vector)
    finish(writer)
    return path


def random_vectors(layers: range | list[int], hidden: int = 48, seed: int = 1) -> dict[int, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {i: (rng.standard_normal(hidden) * rng.uniform(0.5, 40)).astype(np.float32) for i in layers}


def test_export_is_read_by_gguf_with_architecture_layer_count_tensors_and_names(tmp_path: Path) -> None:
    pack = random_pack(scale=2.5)
    report = pack.to_control_vector(tmp_path / "cv.gguf", strength=0.4, layers=[1, 2, 5])
    meta, found = fields(report.path), tensors(report.path)
    assert meta["general.architecture"] == "controlvector"
    assert meta["controlvector.model_hint"] == "qwen2_vl"
    assert meta["controlvector.layer_count"] == 3 == len(found)
    assert sorted(found) == ["direction.1", "direction.2", "direction.5"]
    for i in (1, 2, 5):
        expected = pack.directions[i].double().numpy() * 2.5 * 0.4
        np.testing.assert_allclose(found[f"direction.{i}"], expected, rtol=1e-6)
        assert found[f"direction.{i}"].shape == (48,)
    assert (meta["l2v_hub.pack.name"], meta["l2v_hub.pack.version"]) == ("tiny-pack", "1.0.0")
    assert (meta["general.name"], meta["l2v_hub.target.model_id"]) == ("tiny-pack", "tiny/vlm")
    assert meta["l2v_hub.layers"] == [1, 2, 5] and meta["l2v_hub.strength"] == 0.4
    assert report.layers == (1, 2, 5) and report.scale_origin == "pack"
    assert any("norm_preserving_add -> add" in line for line in report.loses)


def test_the_file_adds_what_patch_adds_under_add_at_all_positions(tmp_path: Path) -> None:
    model, tok = tiny_llama(hidden=32, layers=4), byte_tokenizer()
    pack = random_pack(hidden_size=32, num_layers=4, target_id="tiny/llama", model_type="llama",
                       scale=None)  # uncalibrated: s_i measured on the model, as patch does
    report = pack.to_control_vector(tmp_path / "cv.gguf", strength=0.7, layers=[2], model=model,
                                    tokenizer=tok)
    assert report.scale_origin == "measured"
    block, seen = find_blocks(model).blocks[2], []
    ids = torch.tensor([tok("Steer every token of this prompt.")["input_ids"]])

    def run() -> None:  # a hook registered after patch's sees the steered output
        handle = block.register_forward_hook(lambda m, a, out: seen.append(
            (out[0] if isinstance(out, tuple) else out).detach().clone()))
        try:
            model(input_ids=ids)
        finally:
            handle.remove()

    run()
    with l2v_hub.patch(model, pack, strength=0.7, layers=[2], op="add", positions="all",
                       tokenizer=tok, model_id="tiny/llama"):
        run()
    push = torch.from_numpy(tensors(report.path)["direction.2"])
    torch.testing.assert_close(seen[1] - seen[0], push.expand_as(seen[0]), rtol=0, atol=1e-5)


def test_export_refuses_block_0_a_v1_pack_an_uncalibrated_pack_without_model_and_bad_values(
    tmp_path: Path,
) -> None:
    pack, out = random_pack(), tmp_path / "cv.gguf"
    with pytest.raises(ArgumentError, match="never steers block 0"):
        pack.to_control_vector(out, layers=[0, 1])
    with pytest.raises(ArgumentError, match="outside"):
        pack.to_control_vector(out, layers=[6])
    with pytest.raises(ArgumentError, match="strength"):
        pack.to_control_vector(out, strength=float("nan"))
    with pytest.raises(IncompatiblePackError, match=r"not calibrated.*tokenizer"):
        random_pack(scale=None).to_control_vector(out)
    with pytest.raises(PackError, match="format v1"):
        dataclasses.replace(pack, schema_version=1, scale=None).to_control_vector(out)
    assert not out.exists() and not list(tmp_path.iterdir())


def test_import_of_a_control_vector_made_here(tmp_path: Path) -> None:
    vectors = random_vectors(range(1, 6))  # what llama-cvector-generator makes: blocks 1..L-1
    vectors[3] = np.zeros(48, np.float32)  # a zero vector covers nothing
    path = write_like_repeng(tmp_path / "mood.gguf", vectors)
    pack = import_control_vector(path, model_id="org/model")
    assert (pack.target.num_layers, pack.target.hidden_size, pack.target.model_type) == (6, 48, "llama")
    assert (pack.hook.op, pack.hook.positions) == ("add", "all")
    assert pack.defaults.layers == (1, 2, 4, 5) and pack.defaults.strength == 1.0
    assert pack.scale.measure == "imported"
    for i in (1, 2, 4, 5):
        norm = np.linalg.norm(vectors[i].astype(np.float64))
        assert pack.scale.values[i] == pytest.approx(norm, rel=1e-12)
        np.testing.assert_allclose(pack.directions[i].numpy(), vectors[i] / norm, atol=1e-7)
    # uncovered blocks take the nearest covered block (ties: the lower one)
    assert torch.equal(pack.directions[0], pack.directions[1]) and torch.equal(pack.directions[3], pack.directions[2])
    record = pack.stats["import"]
    assert record["origin"] == "control-vector:mood.gguf" and record["zero_layers"] == [3]
    assert record["filled_from_nearest"] == [0, 3] and len(record["sha256"]) == 64
    assert pack.method.extraction == "imported" and pack.method.pairs.sha256 == record["sha256"]
    assert Pack.from_pretrained(pack.save_pretrained(tmp_path / "pack")) == pack
    card = (tmp_path / "pack" / "README.md").read_text()
    assert "imported from `control-vector:mood.gguf`" in card and "stored (imported)" in card


def test_import_of_a_repeng_control_vector_object_matches_its_gguf(tmp_path: Path) -> None:
    @dataclasses.dataclass
    class ControlVector:  # repeng's shape: model_type and directions {block: array}
        model_type: str
        directions: dict[int, np.ndarray]

    vectors = random_vectors([2, 3, 4], seed=5)
    from_object = import_control_vector(ControlVector("llama", vectors), model_id="org/m", num_layers=6)
    from_file = import_control_vector(write_like_repeng(tmp_path / "v.gguf", vectors),
                                      model_id="org/m", num_layers=6)
    assert torch.equal(from_object.directions, from_file.directions)
    assert from_object.scale == from_file.scale and from_object.stats["import"]["origin"] == "repeng ControlVector"
    with pytest.raises(ArgumentError, match="negative"):
        import_control_vector(ControlVector("llama", {-1: vectors[2]}), model_id="org/m")


def test_round_trip_import_export_is_bit_exact(tmp_path: Path) -> None:
    vectors = random_vectors(range(1, 30), hidden=576, seed=7)
    original = write_like_repeng(tmp_path / "in.gguf", vectors)
    pack = Pack.from_pretrained(import_control_vector(original, model_id="org/m").save_pretrained(tmp_path / "p"))
    pack.to_control_vector(tmp_path / "out.gguf")
    before, after = tensors(original), tensors(tmp_path / "out.gguf")
    assert sorted(before) == sorted(after)
    assert all(before[k].tobytes() == after[k].tobytes() for k in before)
    # and through the file l2v-hub wrote: the pack's name, target and block count come back
    again = import_control_vector(tmp_path / "out.gguf")
    assert (again.target.model_id, again.target.num_layers) == ("org/m", 30)
    again.to_control_vector(tmp_path / "again.gguf")
    assert all(before[k].tobytes() == v.tobytes() for k, v in tensors(tmp_path / "again.gguf").items())


def test_read_refuses_files_that_are_not_control_vectors(tmp_path: Path) -> None:
    writer = gguf.GGUFWriter(tmp_path / "model.gguf", "llama")
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), np.float32))
    finish(writer)
    with pytest.raises(L2VHubError, match="architecture is 'llama', expected 'controlvector'"):
        read_control_vector(tmp_path / "model.gguf")
    half = write_like_repeng(tmp_path / "f16.gguf", {1: np.ones(8, np.float16)})
    with pytest.raises(L2VHubError, match="F32"):
        read_control_vector(half)
    (tmp_path / "text.gguf").write_text("not gguf")
    with pytest.raises(L2VHubError, match="not a readable GGUF"):
        read_control_vector(tmp_path / "text.gguf")


def test_cli_export_says_what_it_keeps_and_loses_and_import_writes_a_pack(tmp_path: Path) -> None:
    folder = random_pack(scale=3.0).save_pretrained(tmp_path / "pack")
    helped = CliRunner().invoke(main, ["export", "--help"], terminal_width=100)
    assert any(SEMANTIC_LINE in line for line in helped.output.splitlines())  # one line
    out = tmp_path / "cv.gguf"
    result = CliRunner().invoke(main, ["export", str(folder), "--format", "llama.cpp", "--out",
                                       str(out), "--layers", "2,3"])
    assert result.exit_code == 0, result.output
    assert "keeps:" in result.output and "loses: positions first_and_generated -> all" in result.output
    assert sorted(tensors(out)) == ["direction.2", "direction.3"]
    imported = CliRunner().invoke(main, ["import", str(out), "--out", str(tmp_path / "back"), "--json"])
    assert imported.exit_code == 0, imported.output
    back = Pack.from_pretrained(tmp_path / "back")
    assert back.target.model_id == "tiny/vlm" and back.defaults.layers == (2, 3)
    again = CliRunner().invoke(main, ["export", str(tmp_path / "back"), "--format", "llama.cpp",
                                      "--out", str(out), "--overwrite"])
    assert again.exit_code == 0 and "loses: block 0" in again.output


def test_the_pack_module_does_not_import_interop() -> None:
    code = "import sys, l2v_hub, l2v_hub.pack; assert 'l2v_hub.interop' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0
