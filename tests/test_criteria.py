"""l2v_hub.criteria: the behaviour criterion's choice (the smallest strength with a significant,
readable rise over the random control), its accuracy guard on the real SmolLM2-135M-Instruct, and
what ``calibrate`` does with the guard's verdict: the strength kept, or the perplexity budget
instead with the behaviour and guard records kept, as ``l2v-hub inspect`` shows."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from conftest import random_pack
from test_calibrate import pack_to_calibrate, run_calibrate, sensitive_llama
from tiny_llm import REPO_CACHE, byte_tokenizer

import l2v_hub
from l2v_hub import Pack, PackError
from l2v_hub.calibration_record import Behaviour, BehaviourPoint
from l2v_hub.criteria import ALPHA, accuracy_guard, choose
from l2v_hub.measure import answer_problems, builtin_problems, summarize
from l2v_hub.measure.problems import Problem

PLG = "prompt_last_and_generated"


def point(strength: float, reasons: float, control: float, p: float | None = 1e-4,
          readable: float = 1.0, positions: str = PLG) -> BehaviourPoint:
    return BehaviourPoint(strength, positions, reasons, control, readable, p)


def record(*points: BehaviourPoint, unpatched: float = 0.1) -> Behaviour:
    return Behaviour("opens_reasoning", 10, "direct", 20.0, unpatched, 1.0, points, alpha=ALPHA)


# -- the choice ------------------------------------------------------------------------------------


def test_the_smallest_strength_with_a_significant_readable_rise_is_chosen_not_the_largest_rise() -> None:
    weak, enough, most = point(0.125, 0.2, 0.15, p=0.3), point(0.25, 0.6, 0.1), point(0.5, 0.95, 0.1, p=1e-9)
    assert choose(record(weak, enough, most)) == enough


@pytest.mark.parametrize("why, bad", [
    ("not significant", point(0.25, 0.6, 0.1, p=0.05)),
    ("no p (a record from before it was kept)", point(0.25, 0.6, 0.1, p=None)),
    ("not readable enough", point(0.25, 0.6, 0.1, readable=0.89)),
    ("not above the control", point(0.25, 0.6, 0.6, p=1e-4)),
    ("not above the unpatched share", point(0.25, 0.1, 0.05)),
])
def test_a_point_that_fails_one_condition_is_passed_over(why: str, bad: BehaviourPoint) -> None:
    later = point(1.0, 0.9, 0.2)
    assert choose(record(bad, later)) == later, why
    assert choose(record(bad)) is None, why


def test_two_policies_at_the_chosen_strength_go_to_the_larger_rise() -> None:
    small = point(0.25, 0.5, 0.2, positions="generated")
    large = point(0.25, 0.8, 0.2)
    assert choose(record(small, large, point(0.5, 0.9, 0.1, positions="generated"))) == large


def test_alpha_is_the_significance_level() -> None:
    mid = point(0.25, 0.6, 0.1, p=0.02)
    assert choose(record(mid), alpha=0.05) == mid
    assert choose(record(mid), alpha=0.01) is None


# -- the accuracy guard on a real model ---------------------------------------------------------

SMOL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
GUARD_TOKENS = 48


@pytest.fixture(scope="module")
def smol() -> tuple[torch.nn.Module, object, list[Problem], Pack]:
    """SmolLM2-135M-Instruct, problems it answers right by construction (each answer replaced by
    the final number its unpatched CoT answer gives, so that any change the pack makes to the
    final numbers counts against it), and a pack of random directions for its shape."""
    from l2v_hub import load_llm
    from l2v_hub.demo import smollm2_gguf

    model, tok = load_llm(smollm2_gguf(), cache_dir=REPO_CACHE)
    every = builtin_problems("calibration", 10)
    answers = answer_problems(model, tok, every, GUARD_TOKENS, len(every), "cot")
    problems = [replace(p, answer=a.final) for p, a in zip(every, answers, strict=True)
                if isinstance(a.final, int | float)]
    assert len(problems) >= 6, [a.text for a in answers]
    pack = random_pack(576, 30, target_id=SMOL_ID, model_type="llama", scale=None)
    return model, tok, problems, pack


@pytest.mark.slow
def test_the_guard_passes_the_identity_and_refuses_a_push_that_breaks_the_answers(smol) -> None:
    model, tok, problems, pack = smol
    n = len(problems)
    kept = accuracy_guard(model, tok, pack, 0.0, PLG, problems, tokens=GUARD_TOKENS,
                          margin=0.0, batch_size=n, model_id=SMOL_ID)
    assert kept.passed and kept.unpatched_accuracy == kept.pack_accuracy == 1.0
    broken = accuracy_guard(model, tok, pack, 8.0, "all", problems,
                            tokens=GUARD_TOKENS, margin=0.10, batch_size=n, model_id=SMOL_ID)
    with l2v_hub.patch(model, pack, strength=8.0, positions="all", model_id=SMOL_ID):
        again = summarize(answer_problems(model, tok, problems, GUARD_TOKENS, n, "cot"))
    assert (broken.regime, broken.tokens, broken.strength, broken.positions) == ("cot", 48, 8.0, "all")
    assert broken.pack_accuracy == round(again["accuracy"], 4) < 0.9
    assert broken.pack_truncated == round(again["truncated"], 4)
    assert not broken.passed and broken.unpatched_accuracy == 1.0
    assert not l2v_hub.unpatch(model)  # the guard leaves no patch behind


@pytest.mark.slow
def test_a_refused_strength_falls_back_to_the_perplexity_budget_keeping_both_records(
        smol, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # SmolLM2 already opens 0.85 of its direct answers with reasoning, so no strength rises
    # significantly on it: the choice is pinned to the sweep's strongest point, to reach the guard.
    import l2v_hub.criteria as criteria
    from l2v_hub.cli import main

    model, tok, problems, pack = smol
    monkeypatch.setattr(criteria, "choose", lambda rec, alpha=ALPHA: rec.points[-1])
    calibrated = run_calibrate(model, tok, pack, criterion="behaviour", grid=(0.5, 8.0),
                               positions=("all",), problems=problems, guard_tokens=GUARD_TOKENS,
                               batch_size=len(problems), model_id=SMOL_ID)
    c = calibrated.calibration
    g = c.behaviour.guard
    assert g is not None and not g.passed and g.strength == c.behaviour.points[-1].strength
    assert c.criterion == "perplexity" and c.positions in ("generated", "first_and_generated")
    assert c.reason.startswith(f"the accuracy guard refused strength {g.strength:g}")
    folder = calibrated.save_pretrained(tmp_path / "pack")
    shown = CliRunner().invoke(main, ["inspect", str(folder)])
    assert shown.exit_code == 0, shown.output
    assert "the accuracy guard refused its strength; chosen by perplexity" in shown.output
    assert f"accuracy {g.pack_accuracy:.2f} against {g.unpatched_accuracy:.2f}" in shown.output
    assert "**refused**" in shown.output
    assert Pack.from_pretrained(folder).calibration == c


@pytest.fixture(scope="module")
def passed() -> Pack:
    """A behaviour calibration of the tiny Llama whose guard passed. A tiny random model writes no
    readable text, so no point qualifies on it: the choice is pinned to the second grid point;
    its accuracy (0 unpatched, 0 steered) passes the guard."""
    import l2v_hub.criteria as criteria

    with pytest.MonkeyPatch.context() as m:
        m.setattr(criteria, "choose", lambda rec, alpha=ALPHA: rec.points[1])
        return run_calibrate(sensitive_llama(), byte_tokenizer(), pack_to_calibrate(),
                             criterion="behaviour", grid=(0.5, 1.0, 2.0),
                             positions=("prompt_last_and_generated",), guard_tokens=8)


def test_a_passed_guard_keeps_the_chosen_strength_and_records_the_grid_there(
        passed: Pack, tmp_path: Path) -> None:
    from l2v_hub.cli import main

    c = passed.calibration
    chosen = c.behaviour.points[1]
    assert c.criterion == "behaviour" and (c.strength, c.positions) == (chosen.strength, chosen.positions)
    assert passed.defaults.strength == chosen.strength and passed.hook.positions == PLG
    g = c.behaviour.guard
    assert g.passed and (g.strength, g.tokens, g.regime) == (chosen.strength, 8, "cot")
    assert [p.strength for p in c.grid] == [0.5, 1.0, 2.0] and {p.positions for p in c.grid} == {PLG}
    assert c.reason.startswith("the smallest grid strength") and "CoT accuracy at 8 tokens" in c.reason
    folder = passed.save_pretrained(tmp_path / "pack")
    shown = CliRunner().invoke(main, ["inspect", str(folder)])
    assert shown.exit_code == 0, shown.output
    assert "Chosen by behaviour" in shown.output and "**passed**" in shown.output
    assert "| strength | positions | pack | random control | p | readable (pack) |" in shown.output
    assert Pack.from_pretrained(folder).calibration == c


def _rewrite(folder: Path, edit) -> None:
    path = folder / "pack.json"
    data = json.loads(path.read_text())
    edit(data["calibration"]["behaviour"])
    path.write_text(json.dumps(data))


def test_a_record_from_before_the_guard_still_loads(passed: Pack, tmp_path: Path) -> None:
    folder = passed.save_pretrained(tmp_path / "pack")

    def strip(b: dict) -> None:
        del b["guard"], b["alpha"]
        for point in b["points"]:
            del point["p"]

    _rewrite(folder, strip)
    b = Pack.from_pretrained(folder).calibration.behaviour
    assert b.guard is None and b.alpha is None and all(p.p is None for p in b.points)
    assert [p.reasons for p in b.points] == [p.reasons for p in passed.calibration.behaviour.points]


@pytest.mark.parametrize("key, value, expected", [
    ("passed", "yes", "'calibration.behaviour.guard.passed' must be true or false"),
    ("positions", "everywhere", "'calibration.behaviour.guard.positions' must be one of"),
    ("pack_accuracy", None, "missing key 'calibration.behaviour.guard.pack_accuracy'"),
])
def test_a_broken_guard_record_is_refused_naming_the_field(passed: Pack, tmp_path: Path, key: str,
                                                           value: object, expected: str) -> None:
    folder = passed.save_pretrained(tmp_path / "pack")

    def corrupt(b: dict) -> None:
        if value is None:
            del b["guard"][key]
        else:
            b["guard"][key] = value

    _rewrite(folder, corrupt)
    with pytest.raises(PackError, match=re.escape(expected)):
        Pack.from_pretrained(folder)
