"""``calibrate(pack, model, tokenizer)``: measure a pack on the model it targets and write what was
measured into a new version of it (docs/calibration.md).

1. s_i on the target: the norm of the target's own CoT mean difference at every block
   (``cot_norm``, from a small set of builtin contrastive pairs), and its own CoT direction.
2. A strength sweep (geometric grid) for each candidate positions policy: the neutral-text
   perplexity at each strength, until it first exceeds ``(1 + budget)`` times the unpatched one.
   The default strength is the largest grid value before that; the policy, the one that allows
   the larger strength (ties: the first candidate, ``generated``).
3. At that strength: accuracy, step-by-step share and answer length on the calibration problems,
   for the unpatched model, the pack, and a seeded random unit direction with the same s_i,
   strength, blocks, op and positions (the control); and the cosine between the pack's direction
   and the target's own CoT direction at each steered block.

The result is a new pack version (versions are immutable); a v1 pack comes out as v2.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import torch
from tqdm.auto import tqdm

from ._version import __version__
from .builder.extract import extract
from .builder.pairs import PairSet, builtin_pairs, tokenize_pairs
from .calibration_record import Calibration, GridPoint, Measures
from .errors import ArgumentError, IncompatiblePackError
from .hub import identify_model
from .loader import MAX_STRENGTH, patch, text_dims
from .loader.families import NEEDS_IMAGE
from .measure import answer_problems, builtin_problems, perplexity, random_directions, summarize
from .measure.problems import Problem, problems_sha256
from .measure.text import neutral_text
from .metadata import Defaults, Hook, Scale
from .pack import Pack

__all__ = ["DEFAULT_BUDGET", "DEFAULT_GRID", "DEFAULT_POSITIONS", "calibrate", "next_version"]

log = logging.getLogger(__name__)

DEFAULT_BUDGET = 0.10
# lambda in units of s_i, a factor sqrt(2) apart: 1/128 .. 8 (Gemma 3 270M already breaks at
# 1/32 of its own CoT-difference norm with a random direction, SmolLM2 at 1/2: docs/calibration.md).
DEFAULT_GRID: tuple[float, ...] = tuple(round(2 ** (k / 2), 5) for k in range(-14, 7))
DEFAULT_POSITIONS: tuple[str, ...] = ("generated", "first_and_generated")
CALIBRATION_PAIRS = 16


def next_version(version: str) -> str:
    """The next minor version: ``0.1.0`` -> ``0.2.0`` (pre-release and build parts dropped)."""
    major, minor, _ = version.split("+")[0].split("-")[0].split(".")
    return f"{major}.{int(minor) + 1}.0"


def _pairs(pairs: PairSet | None) -> PairSet:
    if pairs is not None:
        return pairs
    every = builtin_pairs()
    step = len(every.pairs) // CALIBRATION_PAIRS
    return PairSet(f"builtin-every-{step}th", every.style, every.pairs[::step][:CALIBRATION_PAIRS])


def _own_direction(model: Any, tokenizer: Any, pairs: PairSet, progress: bool) -> torch.Tensor:
    """The target's own CoT mean difference at every block, [L, H] float32 (natural scale)."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    result = extract(model, tokenize_pairs(pairs, tokenizer), method="mean-diff", batch_size=8,
                     pad_token_id=pad or 0, padding_side="left", keep_differences=False,
                     progress=progress)
    return result.mean_difference.float()


def _sweep(model: Any, tokenizer: Any, pack: Pack, text: str, base: float, budget: float,
           grid: tuple[float, ...], positions: str) -> tuple[float, list[GridPoint]]:
    """Largest grid strength before the perplexity first exceeds ``(1 + budget) * base``."""
    chosen, points = 0.0, []
    # One patch per policy; the strength changes without re-patching.
    with patch(model, pack, strength=grid[0], positions=positions, strict=False) as handle:
        for lam in grid:
            handle.strength = lam
            ppl = perplexity(model, tokenizer, text)
            points.append(GridPoint(lam, positions, round(ppl, 4)))
            if ppl > (1 + budget) * base:
                break
            chosen = lam
    return chosen, points


def _row(model: Any, tokenizer: Any, problems: list[Problem], text: str, max_new_tokens: int,
         batch_size: int, pack: Pack | None = None, unpatched_perplexity: float = 0.0) -> Measures:
    if pack is None:  # the unpatched perplexity was measured for the sweep already
        ppl = unpatched_perplexity
        out = summarize(answer_problems(model, tokenizer, problems, max_new_tokens, batch_size))
    else:
        with patch(model, pack, strict=False):
            ppl = perplexity(model, tokenizer, text)
            out = summarize(answer_problems(model, tokenizer, problems, max_new_tokens, batch_size))
    return Measures(round(ppl, 4), out["accuracy"], out["step_by_step"], round(out["answer_tokens"], 2))


def calibrate(
    pack: Pack,
    model: Any,
    tokenizer: Any,
    *,
    budget: float = DEFAULT_BUDGET,
    grid: tuple[float, ...] = DEFAULT_GRID,
    positions: tuple[str, ...] = DEFAULT_POSITIONS,
    problems: list[Problem] | None = None,
    problems_source: str = "given",
    pairs: PairSet | None = None,
    max_new_tokens: int = 64,
    batch_size: int = 20,
    seed: int = 0,
    version: str | None = None,
    model_id: str | None = None,
    progress: bool = True,
) -> Pack:
    """A new version of ``pack`` calibrated on ``model`` (its target, weights loaded).

    ``budget``: the allowed relative rise of the neutral-text perplexity (0.10: +10%). ``grid``:
    candidate strengths in units of s_i, ascending. ``problems`` (default: 20 builtin calibration
    problems; ``problems_source`` names given ones in the record) and ``pairs`` (default: 16
    builtin pairs, for s_i and the own direction). ``version``
    defaults to the next minor version. Raises ``IncompatiblePackError`` when the model's text
    dimensions differ from the pack's target or its forwards need an image (``NEEDS_IMAGE``),
    ``ValueError`` for bad arguments.
    """
    if not 0 < budget <= 10:
        raise ArgumentError(f"budget must be in (0, 10] (0.10 = +10% perplexity), got {budget!r}")
    if not grid or any(b <= a for a, b in itertools.pairwise(grid)) or grid[0] <= 0:
        raise ArgumentError(f"grid must be positive strengths in ascending order, got {grid!r}")
    if grid[-1] > MAX_STRENGTH:  # patch() refuses it: fail now, not half-way through the sweep
        raise ArgumentError(f"grid strengths must be at most {MAX_STRENGTH} (what l2v_hub.patch "
                          f"accepts), got {grid[-1]!r}")
    dims = text_dims(model)
    if (dims.hidden_size, dims.num_layers) != (pack.target.hidden_size, pack.target.num_layers):
        raise IncompatiblePackError(
            f"pack {pack.name!r} is for hidden_size={pack.target.hidden_size}, num_layers="
            f"{pack.target.num_layers}; the model has {dims.hidden_size}, {dims.num_layers}")
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type in NEEDS_IMAGE:
        raise IncompatiblePackError(
            f"a {model_type} model needs an image in every forward, and calibration's forwards "
            "(the own direction, perplexity, answers) are text only: it cannot be calibrated. "
            "Apply the uncalibrated pack: l2v_hub.patch measures s_i on it (docs/loader.md)")
    ref = identify_model(model, model_id=model_id)
    new_version = version or next_version(pack.version)
    text, text_sha = neutral_text()
    problem_source = "builtin-calibration" if problems is None else problems_source
    problems = builtin_problems("calibration", 20) if problems is None else list(problems)
    pairs = _pairs(pairs)
    steps = tqdm(total=3 + len(positions), desc=f"calibrating {pack.name}", disable=not progress)
    own = _own_direction(model, tokenizer, pairs, progress=False)
    scales = own.norm(dim=-1).clamp_min(torch.finfo(torch.float32).tiny)
    steps.update()
    base_pack = replace(pack, scale=Scale("cot_norm", tuple(float(x) for x in scales)),
                        schema_version=2, calibration=None)
    base = perplexity(model, tokenizer, text)
    sweeps = {p: _sweep(model, tokenizer, base_pack, text, base, budget, grid, p) for p in positions}
    steps.update(len(positions))
    policy = max(positions, key=lambda p: (sweeps[p][0], -positions.index(p)))
    strength = sweeps[policy][0]
    others = ", ".join(f"{p}: {sweeps[p][0]:g}" for p in positions if p != policy)
    points = sweeps[policy][1]
    broke = points[-1] if points and points[-1].strength > strength else None
    reason = (f"largest grid strength whose neutral-text perplexity stays within +{budget:.0%} of "
              f"unpatched ({base:.4g})" + (f"; {broke.strength:g} gave {broke.perplexity:.4g}"
                                           if broke else "; no grid point exceeded it")
              + (f"; positions {policy} allowed the largest strength ({others})" if others else ""))
    if strength == 0:
        reason = (f"every grid strength raised the neutral-text perplexity by more than "
                  f"{budget:.0%}: default strength 0 (the pack does nothing unless asked)")
        log.warning("%s: %s", pack.name, reason)
    layers = pack.defaults.layers
    chosen = replace(base_pack, defaults=Defaults(strength, layers),
                     hook=Hook(op=pack.hook.op, positions=policy))
    control = replace(chosen, directions=random_directions(dims.hidden_size, dims.num_layers, seed))
    baseline = _row(model, tokenizer, problems, text, max_new_tokens, batch_size,
                    unpatched_perplexity=base)
    steps.update()
    measured = _row(model, tokenizer, problems, text, max_new_tokens, batch_size, chosen)
    controlled = _row(model, tokenizer, problems, text, max_new_tokens, batch_size, control)
    steps.update()
    steps.close()
    unit_own = own / own.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    cosine = {str(i): round(float(torch.dot(pack.directions[i].float(), unit_own[i])), 4)
              for i in layers}
    weight = next(model.parameters())
    record = Calibration(
        model_id=ref.model_id, revision=ref.revision, dtype=str(weight.dtype).removeprefix("torch."),
        device=str(weight.device), l2v_hub_version=__version__,
        created=datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        scale_measure="cot_norm", budget=budget, text_sha256=text_sha,
        problems={"source": problem_source,
                  "count": len(problems), "sha256": problems_sha256(problems)},
        pairs={"source": pairs.source, "count": len(pairs), "sha256": pairs.sha256()},
        grid=tuple(p for s in sweeps.values() for p in s[1]), strength=strength, positions=policy,
        reason=reason, baseline=baseline, pack=measured, control=controlled, control_seed=seed,
        cosine_own=cosine,
    )
    return replace(chosen, version=new_version, calibration=record, l2v_hub_version=__version__,
                   created=record.created).validate()
