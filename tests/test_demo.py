"""The demo's stages end to end on tiny models: build two packs from one extraction, publish them to
a local store, register them, then patch each target by model id in a fresh process and answer.
The real run (SmolLM2 -> Gemma 3 270M and its VLM) is ``make demo``; its timings are in
docs/benchmarks.md.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
import tiny_demo
import torch

from l2v_hub import Pack
from l2v_hub.builder import PairSet, TargetSpec, build_pack, builtin_pairs
from l2v_hub.demo.answer import QUESTIONS, final_number
from l2v_hub.demo.run import DemoPlan, DemoResult, run
from l2v_hub.hub import Registry, find_pack, resolve_pack

TESTS = Path(__file__).resolve().parent
PAIRS = PairSet("builtin-first-6", "response", builtin_pairs().pairs[:6])


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[DemoPlan, DemoResult, str]:
    out = tmp_path_factory.mktemp("demo")
    plan = DemoPlan(
        out=out,
        cache=out / "cache",
        load_source=tiny_demo.load_source,
        targets=(TargetSpec(tiny_demo.GEMMA_ID, 32, 3, "gemma3_text"),
                 TargetSpec(tiny_demo.VLM_ID, 32, 3, "gemma3")),
        target_loaders=("tiny_demo:load_gemma", "tiny_demo:load_gemma_vlm"),
        pairs=PAIRS,
        max_new_tokens=6,
        python_path=(str(TESTS),),
        eval_target="tiny_demo:gemma_vlm_folder",
        eval_target_id=tiny_demo.VLM_ID,
        eval_images=3,
        eval_texts=2,
        eval_tokens=4,
    )
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        result = run(plan)
    return plan, result, printed.getvalue()


def test_both_packs_published_and_registered(demo) -> None:
    plan, result, _ = demo
    assert len(result.repos) == 2
    registry = Registry.load(result.registry)
    assert sorted(e.target for e in registry.entries) == sorted([tiny_demo.GEMMA_ID, tiny_demo.VLM_ID])
    for spec in plan.targets:
        found = find_pack(spec.model_id, registry=result.registry, store=result.store)
        assert found.found_in == f"user registry {result.registry}"
        pack = found.pulled.pack
        assert resolve_pack(spec.model_id, registry=result.registry, store=result.store) == pack
        assert (pack.target.model_id, pack.target.hidden_size, pack.target.num_layers) == (
            spec.model_id, 32, 3)
        assert (pack.source.model_id, pack.source.hidden_size, pack.source.num_layers) == (
            tiny_demo.SOURCE_ID, 48, 5)
        assert pack.method.pairs.count == len(PAIRS)
        assert (result.store / found.pulled.release.repo_id / pack.version / "pack.json").is_file()


def test_one_extraction_gives_what_build_pack_gives_per_target(demo) -> None:
    plan, result, _ = demo
    model, tokenizer = tiny_demo.load_source(plan.cache)
    for spec, repo in zip(plan.targets, result.repos, strict=True):
        alone = build_pack(model, tokenizer, spec, PAIRS, version="0.1.0", progress=False)
        published = Pack.from_pretrained(result.store / repo / "0.1.0")
        torch.testing.assert_close(published.directions, alone.directions)
        assert published.stats == alone.stats
    # Same depth and width: the two targets get the same directions, recorded for each id.
    a, b = (Pack.from_pretrained(result.store / r / "0.1.0") for r in result.repos)
    torch.testing.assert_close(a.directions, b.directions)


def test_fresh_process_patched_each_target_by_id(demo) -> None:
    _, result, _ = demo
    assert [a["model_id"] for a in result.answers] == [tiny_demo.GEMMA_ID, tiny_demo.VLM_ID]
    assert [a["model_class"] for a in result.answers] == ["Gemma3ForCausalLM", "Gemma3ForConditionalGeneration"]
    for target in result.answers:
        assert target["pack"].startswith("l2v-cot-tiny-llama-to-")
        assert "positions" in target["pack"]
        assert len(target["rows"]) == len(QUESTIONS)
        for row in target["rows"]:
            # The patch changed the model's output: the pack was found and applied.
            assert row["max_logit_change"] > 1e-4
            for side in ("plain", "patched"):
                answer = row[side]
                assert answer["final"] == final_number(answer["text"])
                assert answer["correct"] == (answer["final"] == row["question"]["answer"])
    # Same language weights, same pack directions: the LLM and its VLM answer alike.
    lm, vlm = result.answers
    assert [r["plain"]["text"] for r in lm["rows"]] == [r["plain"]["text"] for r in vlm["rows"]]
    assert json.loads((result.store.parent / "answers.json").read_text()) == result.answers


def test_prints_progress_answers_and_timings(demo) -> None:
    _, result, printed = demo
    for n in range(1, 8):
        assert f"\n[{n}] " in printed
    assert printed.count("WITH l2v_hub.patch(model)") == 2 * len(QUESTIONS)
    assert printed.count("known answer:") == 2 * len(QUESTIONS)
    assert tiny_demo.GEMMA_ID in printed and "<-" in printed  # the `l2v-hub list` lines
    for repo in result.repos:
        assert f"l2v-hub publish {result.store / repo / '0.1.0'} --repo YOUR-ORG/" in printed
    assert set(result.seconds) >= {"total"} and len(result.seconds) == 8
    assert "total" in printed.split("timings:")[1]


@pytest.mark.parametrize(("text", "number"), [
    ("4 x 3 = 12 dollars.\n20 - 12 = 8", 8.0), ("It is 1,250.5 liters", 1250.5), ("no idea", None),
])
def test_final_number(text: str, number: float | None) -> None:
    assert final_number(text) == number


def test_each_published_pack_is_calibrated_on_its_target(demo) -> None:
    plan, result, printed = demo
    for spec, repo in zip(plan.targets, result.repos, strict=True):
        pack = Pack.from_pretrained(result.store / repo / "0.1.0")
        c = pack.calibration
        assert c is not None and c.model_id == spec.model_id
        assert pack.scale.measure == "cot_norm" and len(pack.scale.values) == spec.num_layers
        # The shipped defaults are what the calibration chose, within its perplexity budget.
        assert (pack.defaults.strength, pack.hook.positions) == (c.strength, c.positions)
        assert c.pack.perplexity <= (1 + c.budget) * c.baseline.perplexity
        assert c.problems["count"] == plan.calibration_problems
        # The demo's shorter sweep: its one policy, from its first strength.
        assert {g.positions for g in c.grid} == set(plan.calibration_positions)
        assert min(g.strength for g in c.grid) == pytest.approx(plan.calibration_grid_start, rel=1e-3)
    assert printed.count("random control") >= len(plan.targets)


def test_ends_with_an_eval_of_the_vlm_target_against_a_random_control(demo) -> None:
    plan, result, printed = demo
    rows = {r["name"]: r for r in result.eval["rows"]}
    assert [r["kind"] for r in result.eval["rows"]] == ["unpatched", "pack", "control"]
    pack_row = next(r for r in rows.values() if r["kind"] == "pack")
    assert pack_row["pack"].startswith("l2v-cot-") and pack_row["n"] == plan.eval_images + plan.eval_texts
    assert {c["against"] for c in pack_row["comparisons"]} == {"unpatched", f"random {pack_row['strength']:g}"}
    assert result.eval["config"]["problems"]["with_images"] == plan.eval_images
    assert result.eval["config"]["model_id"] == tiny_demo.VLM_ID
    # The eval table is printed after the side-by-side answers, and its stage is timed.
    assert printed.index("WITH l2v_hub.patch(model)") < printed.index("won/lost vs unpatched")
    assert "$ l2v-hub eval --model" in printed and any("l2v-hub eval" in t for t in result.seconds)
