"""l2v_hub.calibrate on a real tiny Llama: a new, valid v2 version whose s_i, default strength and
positions follow from what it measured (checked against its own record and by re-measuring), a
calibration record that survives save/load and publish/pull, a card and ``l2v-hub inspect`` that
show it, and the warning when the pack is applied to another model than it was calibrated on."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import pytest
import tiny_models
import torch
from click.testing import CliRunner
from conftest import random_pack
from tiny_llm import byte_tokenizer, tiny_llama

import l2v_hub
from l2v_hub import IncompatiblePackError, Pack
from l2v_hub.builder.extract import extract
from l2v_hub.builder.pairs import PairSet, builtin_pairs, tokenize_pairs
from l2v_hub.calibrate import calibrate, next_version
from l2v_hub.card import calibration_lines
from l2v_hub.measure import builtin_problems, neutral_text, perplexity
from l2v_hub.measure.problems import problems_sha256

HIDDEN, LAYERS = 32, 4
TARGET = "org/target"
GRID = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
BUDGET = 0.10
TABLE_HEADER = "| row | strength | perplexity | accuracy | step-by-step | answer tokens |"


def sensitive_llama() -> torch.nn.Module:
    """tiny_llama, its output layer sharpened 20x: a random tiny model's logits are nearly
    uniform, so no push would move its perplexity by 10%; sharpened, the sweep crosses the budget."""
    model = tiny_llama(hidden=HIDDEN, layers=LAYERS)
    with torch.no_grad():
        model.lm_head.weight.mul_(20)
    return model


def three_pairs() -> PairSet:
    every = builtin_pairs()
    return PairSet("builtin[:3]", every.style, every.pairs[:3])


def pack_to_calibrate() -> Pack:
    # A direction that raises this model's perplexity as the strength grows (seed 3, negated),
    # so that the chosen strength lies strictly inside the grid.
    pack = random_pack(HIDDEN, LAYERS, seed=3, target_id=TARGET, scale=None)
    return replace(pack, directions=-pack.directions)


def run_calibrate(model: torch.nn.Module, tok, pack: Pack | None = None, **kwargs) -> Pack:
    options = dict(budget=BUDGET, grid=GRID, problems=builtin_problems("calibration", 3),
                   pairs=three_pairs(), max_new_tokens=6, batch_size=2, model_id=TARGET,
                   progress=False)
    return calibrate(pack or pack_to_calibrate(), model, tok, **{**options, **kwargs})


@pytest.fixture(scope="module")
def setup() -> tuple[torch.nn.Module, object, Pack, Pack]:
    model, tok = sensitive_llama(), byte_tokenizer()
    pack = pack_to_calibrate()
    return model, tok, pack, run_calibrate(model, tok, pack)


def test_the_result_is_a_new_valid_v2_version_of_the_same_directions(setup) -> None:
    _, _, pack, calibrated = setup
    assert calibrated.version == next_version(pack.version) == "1.1.0"
    assert pack.version == "1.0.0" and pack.calibration is None  # the input is left as it was
    assert calibrated.validate() is calibrated and calibrated.schema_version == 2
    assert torch.equal(calibrated.directions, pack.directions)
    assert calibrated.defaults.layers == pack.defaults.layers and calibrated.hook.op == pack.hook.op
    assert calibrated.name == pack.name and calibrated.target == pack.target


def test_s_i_is_the_norm_of_the_targets_own_cot_mean_difference(setup) -> None:
    model, tok, _, calibrated = setup
    assert calibrated.scale.measure == "cot_norm" and calibrated.calibration.scale_measure == "cot_norm"
    values = torch.tensor(calibrated.scale.values)
    assert values.shape == (LAYERS,) and bool((values > 0).all())
    own = extract(model, tokenize_pairs(three_pairs(), tok), method="mean-diff", batch_size=8,
                  pad_token_id=tok.pad_token_id, padding_side="left", keep_differences=False,
                  progress=False).mean_difference.float()
    torch.testing.assert_close(values, own.norm(dim=-1), rtol=1e-5, atol=0)
    # cos_own: the pack's direction against that own direction, at each steered block.
    for block, cosine in calibrated.calibration.cosine_own.items():
        i = int(block)
        want = float(torch.nn.functional.cosine_similarity(calibrated.directions[i], own[i], dim=0))
        assert cosine == pytest.approx(want, abs=1e-4)
    assert set(calibrated.calibration.cosine_own) == {str(i) for i in calibrated.defaults.layers}


def test_the_chosen_strength_is_the_last_grid_point_before_the_budget_is_exceeded(setup) -> None:
    _, _, _, calibrated = setup
    c = calibrated.calibration
    limit = (1 + c.budget) * c.baseline.perplexity
    assert c.budget == BUDGET
    chosen = {}
    for policy in ("generated", "first_and_generated"):
        points = [p for p in c.grid if p.positions == policy]
        strengths = [p.strength for p in points]
        assert strengths == list(GRID[:len(points)])  # ascending from the grid's start
        first_over = next((i for i, p in enumerate(points) if p.perplexity > limit), None)
        if first_over is None:
            assert len(points) == len(GRID)
            chosen[policy] = GRID[-1]
        else:
            assert first_over == len(points) - 1  # the sweep stops at the first exceedance
            chosen[policy] = strengths[first_over - 1] if first_over > 0 else 0.0
    # The policy is the one allowing the larger strength; ties go to the first, "generated".
    best = max(chosen.values())
    policy = next(p for p in ("generated", "first_and_generated") if chosen[p] == best)
    assert (c.positions, c.strength) == (policy, best)
    assert (calibrated.hook.positions, calibrated.defaults.strength) == (policy, best)
    # Strictly inside the grid (the pack was picked for it), so the rule is really exercised.
    assert GRID[0] <= c.strength < GRID[-1]
    assert "stays within +10%" in c.reason


def test_the_recorded_perplexities_are_what_the_patch_gives(setup) -> None:
    model, tok, _, calibrated = setup
    c, (text, sha) = calibrated.calibration, neutral_text()
    assert c.text_sha256 == sha
    assert perplexity(model, tok, text) == pytest.approx(c.baseline.perplexity, abs=1e-4)
    with l2v_hub.patch(model, calibrated, model_id=TARGET) as handle:  # the pack's own defaults
        assert (handle.scale_origin, handle.positions) == ("pack", c.positions)
        at_default = perplexity(model, tok, text)
    (point,) = [p for p in c.grid if (p.strength, p.positions) == (c.strength, c.positions)]
    assert at_default == pytest.approx(point.perplexity, abs=1e-4)
    assert at_default == pytest.approx(c.pack.perplexity, abs=1e-4)
    assert at_default <= (1 + c.budget) * c.baseline.perplexity
    # The next grid point, recorded as the first exceedance, exceeds when re-measured too.
    broke = [p for p in c.grid if p.positions == c.positions][-1]
    assert broke.strength > c.strength
    with l2v_hub.patch(model, calibrated, strength=broke.strength, model_id=TARGET):
        again = perplexity(model, tok, text)
    assert again == pytest.approx(broke.perplexity, abs=1e-4)
    assert again > (1 + c.budget) * c.baseline.perplexity


def test_the_record_names_the_model_the_data_and_the_control(setup) -> None:
    _, _, _, calibrated = setup
    c = calibrated.calibration
    assert (c.model_id, c.dtype, c.device, c.l2v_hub_version) == (TARGET, "float32", "cpu",
                                                                  l2v_hub.__version__)
    assert c.problems == {"source": "given", "count": 3,
                          "sha256": problems_sha256(builtin_problems("calibration", 3))}
    assert c.pairs == {"source": "builtin[:3]", "count": 3, "sha256": three_pairs().sha256()}
    assert c.control_seed == 0
    for row in (c.baseline, c.pack, c.control):
        assert row.perplexity > 1 and 0 <= row.accuracy <= 1 and 0 <= row.step_by_step <= 1
        assert row.answer_tokens > 0
    # The control is another push (a random direction of the same s_i and strength).
    assert c.control.perplexity != c.pack.perplexity


def test_a_chat_template_tokenizer_calibrates_too() -> None:
    model, tok = sensitive_llama(), byte_tokenizer(chat_template=True)
    calibrated = run_calibrate(model, tok, version="2.0.0", seed=7)
    assert calibrated.version == "2.0.0" and calibrated.calibration.control_seed == 7
    assert calibrated.validate().calibration.positions == calibrated.hook.positions


def test_a_v1_pack_comes_out_as_v2() -> None:
    model, tok = sensitive_llama(), byte_tokenizer()
    v1 = replace(pack_to_calibrate(), schema_version=1, scale=None).validate()
    calibrated = run_calibrate(model, tok, v1, grid=(0.25, 0.5))
    assert calibrated.schema_version == 2 and calibrated.scale.measure == "cot_norm"
    l2v_hub.patch(model, calibrated, model_id=TARGET).remove()  # applicable, unlike its input


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"budget": 0}, "budget must be in"),
    ({"budget": 11}, "budget must be in"),
    ({"grid": ()}, "grid must be positive strengths in ascending order"),
    ({"grid": (0.5, 0.25)}, "ascending"),
    ({"grid": (0.0, 1.0)}, "positive"),
    ({"grid": (1.0, 16.0)}, "at most 10"),  # patch() refuses it; refused before any work
])
def test_bad_arguments_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        run_calibrate(tiny_llama(hidden=HIDDEN, layers=LAYERS), byte_tokenizer(), **kwargs)


def test_a_pack_for_other_dimensions_is_refused() -> None:
    with pytest.raises(IncompatiblePackError, match="hidden_size=48"):
        run_calibrate(tiny_llama(hidden=HIDDEN, layers=LAYERS), byte_tokenizer(),
                      random_pack(48, LAYERS, target_id=TARGET))


def test_a_family_whose_forward_needs_an_image_is_refused_before_any_forward() -> None:
    # Kosmos-2 raised transformers' own "You have to specify either pixel_values or image_embeds"
    # from the first text-only forward.
    model = tiny_models.build("kosmos-2")
    calls: list[int] = []
    model.register_forward_pre_hook(lambda m, a: calls.append(1))
    with pytest.raises(IncompatiblePackError, match=r"kosmos-2 model needs an image.*l2v_hub\.patch"):
        calibrate(random_pack(tiny_models.HIDDEN, tiny_models.LAYERS), model, byte_tokenizer(),
                  model_id="tiny/vlm", progress=False)
    assert not calls


# -- the record travels with the pack -----------------------------------------------------------


def test_save_and_load_keep_the_calibration_equal(setup, tmp_path: Path) -> None:
    calibrated = setup[3]
    loaded = Pack.from_pretrained(calibrated.save_pretrained(tmp_path / "pack"))
    assert loaded == calibrated and loaded.calibration == calibrated.calibration
    assert loaded.scale == calibrated.scale


def test_publish_then_pull_keeps_the_calibration_intact(setup, hub) -> None:
    from l2v_hub.hub import publish, pull

    calibrated = setup[3]
    publish(calibrated, "l2v-test/calibrated")
    pulled = pull("l2v-test/calibrated")
    assert pulled.release.version == calibrated.version
    assert pulled.pack == calibrated and pulled.pack.calibration == calibrated.calibration
    card = (pulled.folder / "README.md").read_text(encoding="utf-8")
    assert TABLE_HEADER in card and "random control (seed 0)" in card


def test_the_card_shows_the_calibration_table(setup, tmp_path: Path) -> None:
    calibrated = setup[3]
    c = calibrated.calibration
    card = (calibrated.save_pretrained(tmp_path / "pack") / "README.md").read_text(encoding="utf-8")
    section = card.split("## Calibration")[1].split("## Provenance")[0]
    assert TABLE_HEADER in section and "Not calibrated" not in section
    assert f"Calibrated on `{TARGET}`" in section
    assert f"Default strength **{c.strength:g}**, positions `{c.positions}`" in section
    assert f"| unpatched | 0 | {c.baseline.perplexity:.4g} |" in section
    assert f"| pack ({c.positions}) | {c.strength:g} | {c.pack.perplexity:.4g} |" in section
    assert f"| random control (seed 0) | {c.strength:g} | {c.control.perplexity:.4g} |" in section
    assert all(f"{p.positions} {p.strength:g} → {p.perplexity:.4g}" in section for p in c.grid)
    assert "stored (calibrated)" in card  # the provenance table says where s_i came from


def test_inspect_prints_the_calibration_table(setup, tmp_path: Path) -> None:
    from l2v_hub.cli import main

    calibrated = setup[3]
    folder = calibrated.save_pretrained(tmp_path / "pack")
    result = CliRunner().invoke(main, ["inspect", str(folder)])
    assert result.exit_code == 0, result.output
    for line in calibration_lines(calibrated):
        assert line.strip() in result.output
    assert TABLE_HEADER in result.output and "cot_norm, stored" in result.output
    result = CliRunner().invoke(main, ["inspect", str(folder), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["calibration"] == calibrated.calibration.to_json()


def test_an_uncalibrated_pack_says_so_in_the_card_and_inspect(tmp_path: Path) -> None:
    from l2v_hub.cli import main

    folder = random_pack(scale=None).save_pretrained(tmp_path / "pack")
    card = (folder / "README.md").read_text(encoding="utf-8")
    assert "Not calibrated" in card and TABLE_HEADER not in card
    result = CliRunner().invoke(main, ["inspect", str(folder)])
    assert result.exit_code == 0, result.output
    assert "Not calibrated" in result.output and TABLE_HEADER not in result.output


# -- applied to another model --------------------------------------------------------------------


def test_patching_another_model_than_the_calibrated_one_logs_a_warning_naming_both(
    setup, caplog: pytest.LogCaptureFixture
) -> None:
    model, _, _, calibrated = setup
    caplog.set_level(logging.WARNING, logger="l2v_hub")
    l2v_hub.patch(model, calibrated, model_id=TARGET).remove()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    with pytest.warns(UserWarning, match="built for org/target but the model is org/sibling"):
        l2v_hub.patch(model, calibrated, model_id="org/sibling").remove()
    (record,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "calibrated on org/target" in record.getMessage()
    assert "org/sibling" in record.getMessage()
