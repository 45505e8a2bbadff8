"""benchmarks/efficacy.py: the held-out set stays apart from the build pairs, the metrics mean what
docs/efficacy.md says, the default encoding is exactly build_pack's, and the one command runs at a
reduced size on the real SmolLM2 and writes a sane table.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tiny_llm import REPO_CACHE, byte_tokenizer, tiny_llama

from l2v_hub import TargetSpec, build_pack
from l2v_hub.builder import builtin_pairs, default_keep
from l2v_hub.builder.pairs import PairSet

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from efficacy import case_rows, layer_band  # noqa: E402
from efficacy_directions import encode_variant, source_extraction  # noqa: E402
from efficacy_eval import Target, final_number, is_step_by_step, load_problems, perplexity  # noqa: E402


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def test_eval_set_is_held_out_from_the_builtin_pairs() -> None:
    problems = load_problems()
    assert len(problems) >= 100
    assert len({p.id for p in problems}) == len(problems)
    pair_texts = [_norm(t) for pair in builtin_pairs().pairs for t in (pair.problem, pair.cot, pair.direct)]
    for p in problems:
        q = _norm(p.question)
        leaked = [t for t in pair_texts if q in t]
        assert not leaked, f"eval question {p.id} appears in the builtin pairs: {leaked[0][:80]!r}"


@pytest.mark.parametrize(("text", "number"), [
    ("16 + 28 = 44.", 44.0),
    ("It costs 1,250 dollars", 1250.0),
    ("The temperature drops to -3 degrees.", -3.0),
    ("Half of 7 is 3.5.", 3.5),
    ("no digits here", None),
])
def test_final_number_is_the_last_number_written(text: str, number: float | None) -> None:
    assert final_number(text) == number


Q = "A farm has 6 cows and 7 chickens. How many legs do the animals have in total?"


@pytest.mark.parametrize(("text", "truncated", "structured"), [
    ("38", False, False),
    ("6 cows and 7 chickens have 38 legs.", False, False),  # one sentence, no step word
    ("6 * 4 = 24.\nSo the total is 38.", False, True),  # two different segments with numbers
    ("First 6 cows have 6 * 4 = 24 legs", False, True),  # step word, 4 numbers, 24 is new
    ("First, 6 cows and 7 chickens", False, False),  # step word, but only the question's numbers
    ("38. 38. 38.", False, False),  # one distinct number
    ("6 + 7 = 13\n6 + 7 = 13\n6 + 7 = 1", True, False),  # a loop cut mid-line is not a step
    ("6 + 7 = 13\n6 + 7 = 13\n6 + 7 = 1", False, True),  # finished: two different lines
    ("Step 1: 6 cows have 24 legs. Step 2: 7 chickens have 14 legs. Total 38.", False, True),
])
def test_step_by_step_definition(text: str, truncated: bool, structured: bool) -> None:
    assert is_step_by_step(text, Q, truncated) is structured


def test_default_encoding_is_build_packs_and_the_extraction_is_cached(tmp_path: Path) -> None:
    model, tok = tiny_llama(hidden=32, layers=4), byte_tokenizer(chat_template=True)
    pairs = PairSet("builtin[:6]", "response", builtin_pairs().pairs[:6])
    target = TargetSpec("tiny/vlm", hidden_size=48, num_layers=6, model_type="qwen2_vl")
    pack = build_pack(model, tok, target, pairs, source_id="tiny/llm", progress=False)
    first = source_extraction(model, tok, "tiny/llm", pairs, tmp_path)
    assert len(list(tmp_path.glob("*.safetensors"))) == 1
    again = source_extraction(model, tok, "tiny/llm", pairs, tmp_path)  # read back from disk
    assert torch.equal(first["mean-diff"], again["mean-diff"]) and torch.equal(first["pca"], again["pca"])
    keep = default_keep(32, 48)
    ours = encode_variant(again["mean-diff"], 48, 6, keep=keep)
    torch.testing.assert_close(ours, pack.directions, atol=1e-5, rtol=0)
    for band, resampler in (("high", "fourier"), ("none", "fourier"), ("none", "linear")):
        other = encode_variant(again["mean-diff"], 48, 6, keep=keep, band=band, resampler=resampler)
        torch.testing.assert_close(other.norm(dim=-1), torch.ones(6))
        assert not torch.allclose(other, ours, atol=1e-3), (band, resampler)


def test_perplexity_in_two_forwards_equals_one_forward() -> None:
    # The prompt/continuation split only changes which tokens a patch steers, not the score.
    model, tok = tiny_llama(hidden=32, layers=4), byte_tokenizer()
    text = "The old market hall stands at the corner of the square."
    ids = torch.tensor([tok(text)["input_ids"]])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, :-1]
    expected = math.exp(float(torch.nn.functional.cross_entropy(logits, ids[0, 1:])))
    assert perplexity(Target(model, tok, chat=False), text) == pytest.approx(expected, rel=1e-4)


def test_highpass_is_the_complement_of_the_lowpass() -> None:
    # Same size and depth: no resampling, identity layer map, so the two bands are orthogonal.
    v = torch.randn(5, 40, generator=torch.Generator().manual_seed(1))
    low = encode_variant(v, 40, 5, keep=6, band="low")
    high = encode_variant(v, 40, 5, keep=6, band="high")
    assert float((low * high).sum(-1).abs().max()) < 1e-5


def test_rows_and_layer_bands() -> None:
    same = case_rows(False, [0.1, 0.2], [0.1], 0.2, "generated", None)
    cross = [r.id for r in case_rows(True, [0.1, 0.2], [0.1], 0.2, "generated", None)]
    assert same[0].id == "none" and "linear" not in [r.id for r in same] and "own" not in [r.id for r in same]
    assert {"linear", "own", "random@0.1", "cot@0.2", "early", "late", "pca", "add", "all",
            "first_and_generated", "random-first_and_generated"} <= set(cross)
    assert "generated" not in cross  # the reference policy is not repeated as its own ablation
    assert {r.positions for r in same if r.group != "positions" and r.direction != "none"} == {"generated"}
    assert layer_band("middle", 18) == (7, 8, 9)
    assert layer_band("early", 18) == (2, 3, 4) and layer_band("late", 18) == (13, 14, 15)
    assert layer_band("early", 30) == (4, 5, 6) and layer_band("late", 30) == (23, 24, 25)


@pytest.mark.slow
def test_the_command_at_a_reduced_size(tmp_path: Path) -> None:
    out = tmp_path / "efficacy.md"
    out.write_text("# Doc\n\nprose kept\n\n<!-- efficacy-results:begin (written by benchmarks/efficacy.py) "
                   "-->\nold\n<!-- efficacy-results:end -->\n\nmore prose\n", encoding="utf-8")
    cmd = [sys.executable, str(ROOT / "benchmarks" / "efficacy.py"), "--cases", "smollm2-smollm2",
           "--limit", "3", "--max-new-tokens", "8", "--pairs", "8", "--rows", "cot@0.1,random@0.1,highpass",
           "--cache-dir", str(REPO_CACHE), "--json", str(tmp_path / "e.json"), "--out", str(out),
           "--plot", str(tmp_path / "e.png")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((tmp_path / "e.json").read_text())
    rows = report["cases"]["smollm2-smollm2"]
    assert [r["id"] for r in rows] == ["none", "cot@0.1", "random@0.1", "highpass"]
    for r in rows:
        assert r["n"] == 3 and len(r["correct"]) == 3 and len(r["answers"]) == 3
        for key in ("accuracy", "step_by_step", "truncated"):
            assert 0 <= r[key] <= 1, (r["id"], key, r[key])
        assert 0 < r["length"] <= 8 and math.isfinite(r["perplexity"]) and r["perplexity"] > 1
        assert r["won"] + r["lost"] <= 3
    assert rows[1]["layers"] == [13, 14, 15] and rows[1]["strength"] == 0.1
    assert rows[1]["positions"] == "generated" and rows[3]["strength"] == 0.1  # the sweep's middle
    # The patch really acted: every steered row scores the neutral text differently.
    assert len({round(r["perplexity"], 4) for r in rows}) == 4
    assert -1 <= rows[1]["cos_own"] <= 1 and "cos_own" not in rows[0]
    text = out.read_text()
    assert text.startswith("# Doc\n\nprose kept") and text.rstrip().endswith("more prose")
    assert "old" not in text and all(f"| {r['id']} |" in text for r in rows)
    assert (tmp_path / "e.png").stat().st_size > 1000
