"""``l2v-hub build`` end to end on tiny offline models, and ``inspect --plot``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from tiny_llm import byte_tokenizer, tiny_llama, tiny_qwen2_vl_config

from l2v_hub import Pack
from l2v_hub.cli import main


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    llm = root / "llm"
    tiny_llama(hidden=32, layers=4, seed=0).save_pretrained(llm)
    byte_tokenizer(chat_template=True).save_pretrained(llm)
    pairs = root / "pairs.jsonl"
    pairs.write_text("".join(
        json.dumps({"problem": f"What is {i} + {i}?", "cot": f"{i} + {i} = {2 * i}. So {2 * i}.", "direct": f"{2 * i}."}) + "\n"
        for i in range(12)
    ))
    return {"llm": llm, "vlm": tiny_qwen2_vl_config(root / "vlm", hidden=48, layers=6), "pairs": pairs}


def _build(folders: dict[str, Path], out: Path, *extra: str) -> object:
    args = ["build", "--llm", str(folders["llm"]), "--llm-id", "org/tiny-llm", "--target", str(folders["vlm"]),
            "--target-id", "org/tiny-vlm", "--out", str(out), "--pairs", str(folders["pairs"]), "--quiet", *extra]
    return CliRunner().invoke(main, args)


def test_build_writes_a_pack_that_validates(folders: dict[str, Path], tmp_path: Path) -> None:
    result = _build(folders, tmp_path / "pack", "--json", "--version", "1.2.0", "--extraction", "pca")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    pack = Pack.from_pretrained(tmp_path / "pack")
    assert (pack.target.model_id, pack.target.hidden_size, pack.target.num_layers) == ("org/tiny-vlm", 48, 6)
    assert (pack.source.model_id, pack.source.hidden_size, pack.source.num_layers) == ("org/tiny-llm", 32, 4)
    assert pack.version == "1.2.0" and pack.method.extraction == "pca"
    assert pack.method.pairs.source == "jsonl:pairs.jsonl" and pack.method.pairs.count == 12
    assert report["path"] == str(tmp_path / "pack") and report["defaults"]["layers"] == [1, 2, 3]
    assert set(report["separation_at_default"]) == {"1", "2"}
    assert "stats.json" in json.loads((tmp_path / "pack" / "pack.json").read_text())["files"]


def test_build_options_reach_the_pack(folders: dict[str, Path], tmp_path: Path) -> None:
    result = _build(folders, tmp_path / "p", "--keep", "4", "--layers", "1,5", "--strength", "0.3",
                    "--name", "my-pack", "--dtype", "float32", "--device", "cpu", "--batch-size", "3")
    assert result.exit_code == 0, result.output
    assert "wrote my-pack v0.1.0" in result.output and "separation" in result.output
    pack = Pack.from_pretrained(tmp_path / "p")
    assert pack.method.lowpass_keep == 4 and pack.defaults.layers == (1, 5) and pack.defaults.strength == 0.3


def test_build_refuses_to_overwrite_and_to_record_paths(folders: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "p"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = _build(folders, out)
    assert result.exit_code == 1 and "pass --overwrite" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    args = ["build", "--llm", str(folders["llm"]), "--target", str(folders["vlm"]), "--target-id", "org/v",
            "--out", str(tmp_path / "q"), "--quiet"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and "--llm-id" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "q").exists()


def test_build_bad_pairs_file_names_the_line(folders: dict[str, Path], tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"problem": "p", "cot": "c", "direct": "d"}\n{"problem": "p", "cot": "c"}\n')
    result = _build({**folders, "pairs": bad}, tmp_path / "p")
    assert result.exit_code == 1 and "line 2: field 'direct'" in result.output
    assert not (tmp_path / "p").exists()


def test_build_usage_errors_are_exit_2(folders: dict[str, Path], tmp_path: Path) -> None:
    assert CliRunner().invoke(main, ["build", "--llm", "x"]).exit_code == 2
    assert _build(folders, tmp_path / "p", "--extraction", "lda").exit_code == 2
    assert _build(folders, tmp_path / "p", "--layers", "a,b").exit_code == 2
    assert CliRunner().invoke(main, ["build", "--help"]).exit_code == 0


def test_build_read_reaches_the_pack_inspect_and_the_card(folders: dict[str, Path], tmp_path: Path) -> None:
    result = _build(folders, tmp_path / "p", "--read", "response_first", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["read"] == "response_first"
    assert Pack.from_pretrained(tmp_path / "p").method.token == "response_first"
    shown = "mean-diff at the first response token (`response_first`)"
    assert shown in (tmp_path / "p" / "README.md").read_text()
    result = CliRunner().invoke(main, ["inspect", str(tmp_path / "p")])
    assert result.exit_code == 0 and shown in result.output, result.output


def test_a_bad_read_is_a_usage_error_before_the_llm_loads(
    folders: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import l2v_hub.builder as builder

    monkeypatch.setattr(builder, "load_llm", lambda *a, **k: pytest.fail("the LLM was loaded"))
    result = _build(folders, tmp_path / "p", "--read", "mean")
    assert result.exit_code == 2 and "'mean' is not one of 'last', 'response_mean'" in result.output
    result = _build(folders, tmp_path / "p", "--read", "response_mean", "--pairs", "prompt-contrast")
    assert result.exit_code == 2 and "prompt-contrast pairs have none" in result.output, result.output
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--layers", "9", "has blocks 0..5"),  # the target has 6 blocks
    ("--keep", "999", "has 17 frequency bins"),  # the source is 32 wide
    ("--version", "banana", "semantic version"),
])
def test_values_that_do_not_fit_the_models_are_usage_errors_before_the_llm_loads(
    folders: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, option: str,
    value: str, message: str,
) -> None:
    import l2v_hub.builder as builder

    def no_loading(*args: object, **kwargs: object) -> None:
        raise AssertionError("the LLM was loaded before the arguments were checked")

    monkeypatch.setattr(builder, "load_llm", no_loading)
    result = _build(folders, tmp_path / "p", option, value)
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "p").exists()


def test_keep_beyond_a_gguf_sources_width_is_a_usage_error_before_the_llm_loads(
    folders: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 20: `--keep 5000` with a GGUF source was refused only after loading, with exit 1.
    The width comes from the file's header (SmolLM2-135M: 576, so 289 bins)."""
    import l2v_hub.builder as builder
    from l2v_hub.demo import smollm2_gguf

    def no_loading(*args: object, **kwargs: object) -> None:
        raise AssertionError("the LLM was loaded before --keep was checked")

    monkeypatch.setattr(builder, "load_llm", no_loading)
    for source in (["--llm", str(smollm2_gguf())],
                   ["--llm", str(smollm2_gguf().parent), "--gguf-file", smollm2_gguf().name]):
        result = CliRunner().invoke(main, [
            "build", *source, "--llm-id", "org/smol", "--target", str(folders["vlm"]),
            "--target-id", "org/tiny-vlm", "--out", str(tmp_path / "p"), "--keep", "5000"])
        assert result.exit_code == 2, result.output
        assert "has 289 frequency bins (hidden size 576), got 5000" in result.output
        assert not (tmp_path / "p").exists()


def test_errors_quote_the_cause_whole(folders: dict[str, Path], tmp_path: Path,
                                      hf_offline: Path) -> None:
    """Issue 20: causes were cut mid-text ("...offline mode at 'https://")."""
    result = _build({**folders, "vlm": "nonexistent-org/nonexistent-vlm"}, tmp_path / "p")
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert "cannot read the config of target 'nonexistent-org/nonexistent-vlm': We couldn't connect" \
        in result.output
    assert result.output.rstrip().endswith(
        "in offline mode at 'https://huggingface.co/docs/transformers/installation#offline-mode'.")
    no_tokenizer = tmp_path / "llm"
    tiny_llama(hidden=32, layers=4).save_pretrained(no_tokenizer)
    result = _build({**folders, "llm": no_tokenizer}, tmp_path / "p")
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert result.output.rstrip().endswith("to convert a slow tokenizer to a fast one."), result.output


def test_a_long_cause_is_cut_after_a_sentence() -> None:
    from l2v_hub.errors import quote

    assert quote("One.\nTwo  words.") == "One. Two words."
    first = "A first sentence that is long enough to keep on its own."
    assert quote(first + " " + "word " * 200, 100) == first + " …"
    assert quote("Short. " + "word " * 200, 100) == "Short." + " word" * 18 + "…"
    assert quote("x" * 60 + " " + "y" * 200, 100) == "x" * 60 + "…"


def test_build_plot_draws_the_figure_and_inspect_shows_the_diagnostics(
    folders: dict[str, Path], tmp_path: Path
) -> None:
    """Issue 20: build wrote no plot, and inspect's text said only "N source blocks of
    diagnostics"."""
    pytest.importorskip("matplotlib", reason="the 'plot' extra is part of the test extra")
    figure = tmp_path / "fig.png"
    result = _build(folders, tmp_path / "p", "--plot", str(figure))
    assert result.exit_code == 0, result.output
    assert f"plot:      {figure}" in result.output
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pack = Pack.from_pretrained(tmp_path / "p")
    rows = {row["block"]: row for row in pack.stats["layers"]}
    text = CliRunner().invoke(main, ["inspect", str(tmp_path / "p")]).output
    blocks = pack.stats["default_source_blocks"]
    assert blocks and "4 source blocks of diagnostics" in text
    for b in blocks:
        r = rows[b]
        assert (f"source block {b}: separation {r['separation']:.3g}, dispersion "
                f"{r['dispersion']:.3g}, energy in band {r['energy_in_band']:.1%}") in text, text


def test_inspect_plot_draws_a_png(folders: dict[str, Path], tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="the 'plot' extra is part of the test extra")
    assert _build(folders, tmp_path / "p").exit_code == 0
    result = CliRunner().invoke(main, ["inspect", str(tmp_path / "p"), "--plot", str(tmp_path / "fig.png")])
    assert result.exit_code == 0, result.output
    assert f"plot:      {tmp_path / 'fig.png'}" in result.output
    assert (tmp_path / "fig.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_inspect_plot_without_matplotlib_says_how_to_get_it(
    folders: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _build(folders, tmp_path / "p").exit_code == 0
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    result = CliRunner().invoke(main, ["inspect", str(tmp_path / "p"), "--plot", str(tmp_path / "fig.png")])
    assert result.exit_code == 1 and "pip install 'l2v-hub[plot]'" in result.output
    assert not (tmp_path / "fig.png").exists()
