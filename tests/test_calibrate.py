"""l2v_hub.calibrate on a real tiny Llama: a new, valid v2 version whose s_i, default strength and
positions follow from what it measured (checked against its own record and by re-measuring), a
calibration record that survives save/load and publish/pull, a card and ``l2v-hub inspect`` that
show it, and the warning when the pack is applied to another model than it was calibrated on."""

from __future__ import annotations

import json
import logging
import warnings
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
from l2v_hub.builder.pairs import PairSet, builtin_pairs, read_spans, tokenize_pairs
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
    options = dict(criterion="perplexity", budget=BUDGET, grid=GRID,
                   problems=builtin_problems("calibration", 3),
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
    assert c.pairs == {"source": "builtin[:3]", "count": 3, "sha256": three_pairs().sha256(),
                       "read": "last"}
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


def test_the_own_direction_is_read_as_the_pack_was_or_as_asked(tmp_path: Path) -> None:
    """s_i is the norm of the target's own direction read as the pack's directions were read
    (method.token), or as ``read`` says; the record, the card and inspect say which."""
    model, tok = sensitive_llama(), byte_tokenizer(chat_template=True)
    pairs, pack = three_pairs(), pack_to_calibrate()
    tokens = tokenize_pairs(pairs, tok)

    def own_norms(read: str) -> torch.Tensor:
        return extract(model, tokens, spans=read_spans(pairs, tok, tokens, read), batch_size=8,
                       pad_token_id=tok.pad_token_id, padding_side="left", keep_differences=False,
                       progress=False).mean_difference.float().norm(dim=-1)

    built = replace(pack, method=replace(pack.method, token="response_mean"))
    quick = dict(grid=(0.25, 0.5), positions=("generated",), max_new_tokens=2)
    for calibrated, read in ((run_calibrate(model, tok, built, **quick), "response_mean"),
                             (run_calibrate(model, tok, built, read="response_first", **quick),
                              "response_first")):
        assert calibrated.calibration.pairs["read"] == read
        torch.testing.assert_close(torch.tensor(calibrated.scale.values), own_norms(read),
                                   rtol=1e-5, atol=0)
        assert not torch.allclose(torch.tensor(calibrated.scale.values), own_norms("last"), rtol=1e-2)
        loaded = Pack.from_pretrained(calibrated.save_pretrained(tmp_path / read))
        assert loaded.calibration == calibrated.calibration
    shown = "read at the first response token (`response_first`)"
    assert any(shown in line for line in calibration_lines(calibrated))


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
    ({"read": "mean"}, "read must be one of 'last', 'response_mean', 'response_first'"),
])
def test_bad_arguments_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        run_calibrate(tiny_llama(hidden=HIDDEN, layers=LAYERS), byte_tokenizer(), **kwargs)


def test_a_pack_for_other_dimensions_is_refused() -> None:
    with pytest.raises(IncompatiblePackError, match="hidden_size=48"):
        run_calibrate(tiny_llama(hidden=HIDDEN, layers=LAYERS), byte_tokenizer(),
                      random_pack(48, LAYERS, target_id=TARGET))


def test_the_cli_patches_with_the_model_id_it_was_given(tmp_path: Path) -> None:
    """Issue 20: `calibrate --model FOLDER --model-id ID` warned "cannot tell which model this
    is ... pass model_id=" from its own internal patches. Also: --problems is the deprecated
    name of --calibration-problems (in eval --problems is a file)."""
    from l2v_hub.cli import main

    model_dir, pack_dir, out = tmp_path / "model", tmp_path / "pack", tmp_path / "out"
    sensitive_llama().save_pretrained(model_dir)
    byte_tokenizer().save_pretrained(model_dir)
    pack_to_calibrate().save_pretrained(pack_dir)
    args = ["calibrate", str(pack_dir), "--model", str(model_dir), "--model-id", TARGET, "--out",
            str(out), "--grid", "0.25,0.5", "--max-new-tokens", "2", "--quiet", "--json"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = CliRunner().invoke(main, [*args, "--problems", "1"])
    assert result.exit_code == 0, result.output
    assert not [w for w in caught if "cannot tell which model" in str(w.message)]
    assert "--problems is deprecated here" in result.output
    calibrated = Pack.from_pretrained(out)
    assert calibrated.calibration.model_id == TARGET
    assert calibrated.calibration.problems["count"] == 1
    both = CliRunner().invoke(main, [*args, "--problems", "1", "--calibration-problems", "3",
                                     "--overwrite"])
    assert both.exit_code == 2 and "disagree" in both.output  # before the model loads


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


def test_a_v1_pack_says_it_is_never_applied_and_how_to_convert_it(tmp_path: Path) -> None:
    """Issue 20: inspect said a v1 pack's s_i "is measured on the model at patch time", but patch
    refuses v1 packs."""
    from l2v_hub.cli import main

    v1 = replace(random_pack(scale=None), schema_version=1, scale=None).validate()
    (line,) = calibration_lines(v1)
    assert "patch time" not in line and "refuses a v1 pack" in line
    assert "l2v-hub calibrate PACK --model TARGET --out NEW_FOLDER" in line
    folder = v1.save_pretrained(tmp_path / "v1")
    result = CliRunner().invoke(main, ["inspect", str(folder)])
    assert result.exit_code == 0 and "refuses a v1 pack" in result.output, result.output
    assert "measured on the model at patch time" not in result.output


def test_an_uncalibrated_pack_says_so_in_the_card_and_inspect(tmp_path: Path) -> None:
    from l2v_hub.cli import main

    folder = random_pack(scale=None).save_pretrained(tmp_path / "pack")
    card = (folder / "README.md").read_text(encoding="utf-8")
    assert "Not calibrated" in card and TABLE_HEADER not in card
    result = CliRunner().invoke(main, ["inspect", str(folder)])
    assert result.exit_code == 0, result.output
    assert "Not calibrated" in result.output and TABLE_HEADER not in result.output


# -- the behaviour criterion (the default) ------------------------------------------------------

BEHAVIOUR_GRID = (0.5, 2.0, 8.0)


@pytest.fixture(scope="module")
def behaviour_setup() -> tuple[torch.nn.Module, object, Pack]:
    model, tok = sensitive_llama(), byte_tokenizer()
    return model, tok, run_calibrate(model, tok, criterion="behaviour", grid=BEHAVIOUR_GRID,
                                     positions=("prompt_last_and_generated", "generated"),
                                     guard_tokens=8)


def test_the_behaviour_record_holds_every_point_the_patched_model_gives(behaviour_setup) -> None:
    from l2v_hub.measure.behaviour import behaviour_sweep

    model, tok, calibrated = behaviour_setup
    b = calibrated.calibration.behaviour
    assert (b.measure, b.tokens, b.regime) == ("opens_reasoning", 10, "direct")
    control = replace(calibrated, directions=l2v_hub.measure.random_directions(HIDDEN, LAYERS, 0))
    for policy in ("prompt_last_and_generated", "generated"):
        points = [p for p in b.points if p.positions == policy]
        assert [p.strength for p in points] == list(BEHAVIOUR_GRID[:len(points)])
        unpatched, _, again = behaviour_sweep(model, tok, calibrated, control,
                                              builtin_problems("calibration", 3), BEHAVIOUR_GRID,
                                              policy, tokens=10, batch_size=2)
        assert again == points and unpatched == b.unpatched


def test_the_behaviour_choice_is_what_the_criterion_picks_from_the_record(behaviour_setup) -> None:
    from l2v_hub.criteria import choose

    _, _, calibrated = behaviour_setup
    c = calibrated.calibration
    chosen = choose(c.behaviour, c.behaviour.alpha)
    if chosen is None:  # fell back: no point rose significantly, so no guard was run
        assert c.criterion == "perplexity" and c.behaviour.guard is None
        assert c.reason.startswith("no behaviour-grid strength") and "stays within +10%" in c.reason
    elif c.behaviour.guard.passed:
        assert (c.criterion, c.strength, c.positions) == ("behaviour", chosen.strength, chosen.positions)
        assert "open with reasoning" in c.reason
        # The neutral-text perplexity is recorded along the grid at the chosen policy.
        assert [p.strength for p in c.grid] == list(BEHAVIOUR_GRID)
        assert {p.positions for p in c.grid} == {c.positions}
    else:
        assert c.criterion == "perplexity" and c.reason.startswith("the accuracy guard refused")


def test_inspect_and_the_card_show_the_behaviour_measurement(behaviour_setup, tmp_path: Path) -> None:
    from l2v_hub.cli import main

    calibrated = behaviour_setup[2]
    c = calibrated.calibration
    folder = calibrated.save_pretrained(tmp_path / "pack")
    result = CliRunner().invoke(main, ["inspect", str(folder)])
    assert result.exit_code == 0, result.output
    assert f"(criterion: {c.criterion})" in result.output
    assert "| strength | positions | pack | random control | p | readable (pack) |" in result.output
    for p in c.behaviour.points:
        assert (f"| {p.strength:g} | {p.positions} | {p.reasons:.2f} | {p.control_reasons:.2f} | "
                f"{p.p:.2g} | {p.readable:.2f} |") in result.output
    card = (folder / "README.md").read_text(encoding="utf-8")
    assert "open with reasoning (opens_reasoning)" in card
    assert Pack.from_pretrained(folder).calibration == c  # the record survives save and load


def test_a_bad_criterion_is_refused() -> None:
    with pytest.raises(ValueError, match="criterion must be one of behaviour, perplexity"):
        run_calibrate(sensitive_llama(), byte_tokenizer(), criterion="fluency")


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


def test_the_default_pairs_follow_the_packs_recipe_and_are_named_by_it() -> None:
    pack = pack_to_calibrate()
    contrast = replace(pack, method=replace(pack.method, pairs=replace(pack.method.pairs,
                                                                       source="prompt-contrast")))
    calibrated = run_calibrate(sensitive_llama(), byte_tokenizer(), contrast, pairs=None, grid=(0.5,))
    assert calibrated.calibration.pairs["source"] == "prompt-contrast-every-18th"
    assert calibrated.calibration.pairs["count"] == 16
