"""``calibrate(pack, model, tokenizer)``: measure a pack on the model it targets and write what was
measured into a new version of it (docs/calibration.md).

1. s_i on the target: the norm of the target's own CoT mean difference at every block
   (``cot_norm``, from a small set of builtin contrastive pairs), and its own CoT direction.
2. The default strength, by ``criterion`` (:mod:`l2v_hub.criteria`):

   - ``behaviour`` (the default; docs/reasoning.md): for each candidate policy (default
     ``prompt_last_and_generated``) and strength of a short grid, the share of 10-token answers
     to the calibration problems (``direct`` prompt) that open with reasoning and stay readable,
     with the pack and with its random control (:mod:`l2v_hub.measure.behaviour`). The default
     is the smallest strength that raises it significantly over the control (McNemar's exact
     p < 0.05) and over the unpatched share, with a readable share within 90% of the unpatched
     one; then the **accuracy guard**: the calibration problems under the CoT prompt with
     ``guard_tokens`` new tokens, unpatched and with the pack at that strength; a fall of the
     accuracy by more than ``accuracy_margin`` refuses it. When no strength qualifies, or the
     guard refuses it, the calibration falls back to ``perplexity``, keeps the behaviour record
     (and the guard's) and says why;
   - ``perplexity`` (no pack calibrated by it was told apart from its random control in
     docs/efficacy.md): a sweep (geometric grid) for each candidate policy (default
     ``generated``, ``first_and_generated``) of the neutral-text perplexity, until it first
     exceeds ``(1 + budget)`` times the unpatched one. The default strength is the largest grid
     value before that; the policy, the one that allows the larger strength (ties: the first).
3. At that strength: accuracy, step-by-step share and answer length on the calibration problems,
   for the unpatched model, the pack, and a seeded random unit direction with the same s_i,
   strength, blocks, op and positions (the control); and the cosine between the pack's direction
   and the target's own CoT direction at each steered block.

The result is a new pack version (versions are immutable); a v1 pack comes out as v2.
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import torch
from tqdm.auto import tqdm

from ._version import __version__
from .builder.extract import extract
from .builder.pairs import (
    PairSet,
    builtin_pairs,
    check_read,
    prompt_contrast,
    read_spans,
    tokenize_pairs,
)
from .calibration_record import CRITERIA, Calibration, Measures
from .criteria import (
    ACCURACY_MARGIN,
    BEHAVIOUR_GRID,
    BEHAVIOUR_POSITIONS,
    GUARD_TOKENS,
    accuracy_guard,
    behaviour_reason,
    by_behaviour,
    by_perplexity,
    fallback_reason,
    perplexity_sweep,
)
from .errors import ArgumentError, IncompatiblePackError
from .hub import identify_model
from .loader import MAX_STRENGTH, patch, text_dims
from .loader.families import NEEDS_IMAGE
from .measure import answer_problems, builtin_problems, perplexity, random_directions, summarize
from .measure.problems import Problem, problems_sha256
from .measure.text import neutral_text
from .metadata import READS, Defaults, Hook, Read, Scale
from .pack import Pack

__all__ = ["DEFAULT_BUDGET", "DEFAULT_CRITERION", "DEFAULT_GRID", "DEFAULT_POSITIONS", "calibrate",
           "next_version"]

log = logging.getLogger(__name__)

DEFAULT_BUDGET = 0.10
# lambda in units of s_i, a factor sqrt(2) apart: 1/128 .. 8 (Gemma 3 270M already breaks at
# 1/32 of its own CoT-difference norm with a random direction, SmolLM2 at 1/2: docs/calibration.md).
DEFAULT_GRID: tuple[float, ...] = tuple(round(2 ** (k / 2), 5) for k in range(-14, 7))
DEFAULT_POSITIONS: tuple[str, ...] = ("generated", "first_and_generated")
# Behaviour, within the readability and accuracy guards: the perplexity budget alone capped every
# pack below any effect (docs/reasoning.md, 1), the behaviour choice without the accuracy guard
# harmed accuracy under the CoT prompt (reasoning.md, 3).
DEFAULT_CRITERION = "behaviour"
CALIBRATION_PAIRS = 16


def next_version(version: str) -> str:
    """The next minor version: ``0.1.0`` -> ``0.2.0`` (pre-release and build parts dropped)."""
    major, minor, _ = version.split("+")[0].split("-")[0].split(".")
    return f"{major}.{int(minor) + 1}.0"


def _pairs(pairs: PairSet | None, pack: Pack) -> PairSet:
    """The given pairs, else 16 of the builtin ones in the pack's own recipe (s_i is the norm of
    the target's own direction read the way the pack's was)."""
    if pairs is not None:
        return pairs
    every = prompt_contrast() if pack.method.pairs.source.startswith("prompt-contrast") else builtin_pairs()
    step = len(every.pairs) // CALIBRATION_PAIRS
    return PairSet(f"{every.source}-every-{step}th", every.style, every.pairs[::step][:CALIBRATION_PAIRS])


def _own_direction(model: Any, tokenizer: Any, pairs: PairSet, read: str,
                   progress: bool) -> torch.Tensor:
    """The target's own CoT mean difference at every block, [L, H] float32 (natural scale), read
    as the builder reads a pair (``read``: ``builder.pairs.read_spans``)."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    tokens = tokenize_pairs(pairs, tokenizer)
    result = extract(model, tokens, spans=read_spans(pairs, tokenizer, tokens, read),
                     method="mean-diff", batch_size=8, pad_token_id=pad or 0, padding_side="left",
                     keep_differences=False, progress=progress)
    return result.mean_difference.float()


def _row(model: Any, tokenizer: Any, problems: list[Problem], text: str, max_new_tokens: int,
         batch_size: int, model_id: str, pack: Pack | None = None,
         unpatched_perplexity: float = 0.0) -> Measures:
    """Perplexity and answers, unpatched or with ``pack`` (patched as ``model_id``: the id the
    caller gave, so a model from a local folder is known too)."""
    if pack is None:  # the unpatched perplexity was measured for the sweep already
        ppl = unpatched_perplexity
        out = summarize(answer_problems(model, tokenizer, problems, max_new_tokens, batch_size))
    else:
        with patch(model, pack, model_id=model_id, strict=False):
            ppl = perplexity(model, tokenizer, text)
            out = summarize(answer_problems(model, tokenizer, problems, max_new_tokens, batch_size))
    return Measures(round(ppl, 4), out["accuracy"], out["step_by_step"], round(out["answer_tokens"], 2))


def calibrate(
    pack: Pack,
    model: Any,
    tokenizer: Any,
    *,
    criterion: str = DEFAULT_CRITERION,
    budget: float = DEFAULT_BUDGET,
    grid: tuple[float, ...] | None = None,
    positions: tuple[str, ...] | None = None,
    problems: list[Problem] | None = None,
    problems_source: str = "given",
    pairs: PairSet | None = None,
    read: Read | None = None,
    max_new_tokens: int = 64,
    guard_tokens: int = GUARD_TOKENS,
    accuracy_margin: float = ACCURACY_MARGIN,
    batch_size: int = 20,
    seed: int = 0,
    version: str | None = None,
    model_id: str | None = None,
    progress: bool = True,
) -> Pack:
    """A new version of ``pack`` calibrated on ``model`` (its target, weights loaded).

    ``criterion``: ``"behaviour"`` or ``"perplexity"`` (this module's docstring). ``budget``: the
    allowed relative rise of the neutral-text perplexity (0.10: +10%; the ``perplexity``
    criterion and its fallback). ``guard_tokens``, ``accuracy_margin``: the behaviour criterion's
    accuracy guard (:mod:`l2v_hub.criteria`); ``max_new_tokens``: the budget of the recorded
    rows (step 3). ``grid``: candidate strengths in units of s_i, ascending
    (default :data:`BEHAVIOUR_GRID` or :data:`DEFAULT_GRID`); ``positions``: candidate policies
    (default :data:`BEHAVIOUR_POSITIONS` or :data:`DEFAULT_POSITIONS`). ``problems`` (default:
    20 builtin calibration problems; ``problems_source`` names given ones in the record) and
    ``pairs`` (default: 16 builtin pairs in the pack's recipe, for s_i and the own direction),
    read as ``read`` says (``last``, ``response_mean``, ``response_first``; default: the pack's
    own ``method.token`` when it is one of these and the pairs are response-style, else
    ``last``), so that s_i measures the target's direction as the pack's was read.
    ``version`` defaults to the next minor version. Raises ``IncompatiblePackError`` when the
    model's text dimensions differ from the pack's target or its forwards need an image
    (``NEEDS_IMAGE``), ``ValueError`` for bad arguments.
    """
    if criterion not in CRITERIA:
        raise ArgumentError(f"criterion must be one of {', '.join(CRITERIA)}, got {criterion!r}")
    behaviour = criterion == "behaviour"
    fallback_grid = DEFAULT_GRID if grid is None else grid  # the perplexity sweep's, if it comes to it
    if grid is None:
        grid = BEHAVIOUR_GRID if behaviour else DEFAULT_GRID
    if positions is None:
        positions = BEHAVIOUR_POSITIONS if behaviour else DEFAULT_POSITIONS
    if not 0 <= accuracy_margin <= 1:
        raise ArgumentError(f"accuracy_margin must be in [0, 1] (0.10 = 10 points), got "
                            f"{accuracy_margin!r}")
    if guard_tokens < 1 or max_new_tokens < 1:
        raise ArgumentError(f"guard_tokens and max_new_tokens must be at least 1, got "
                            f"{guard_tokens!r} and {max_new_tokens!r}")
    if not 0 < budget <= 10:
        raise ArgumentError(f"budget must be in (0, 10] (0.10 = +10% perplexity), got {budget!r}")
    if not grid or any(b <= a for a, b in itertools.pairwise(grid)) or grid[0] <= 0:
        raise ArgumentError(f"grid must be positive strengths in ascending order, got {grid!r}")
    if read is not None:
        check_read(read)
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
    pairs = _pairs(pairs, pack)
    # Instruction-style pairs have no response: read at their end (the last prompt token).
    read = read or (pack.method.token if pack.method.token in READS and pairs.style == "response"
                    else "last")
    steps = tqdm(total=5, desc=f"calibrating {pack.name}", disable=not progress)
    own = _own_direction(model, tokenizer, pairs, read, progress=False)
    scales = own.norm(dim=-1).clamp_min(torch.finfo(torch.float32).tiny)
    steps.update()
    base_pack = replace(pack, scale=Scale("cot_norm", tuple(float(x) for x in scales)),
                        schema_version=2, calibration=None)
    random = replace(base_pack, directions=random_directions(dims.hidden_size, dims.num_layers, seed))
    base = perplexity(model, tokenizer, text)
    record, point = (by_behaviour(model, tokenizer, base_pack, random, problems, grid, positions,
                                  batch_size, ref.model_id) if behaviour else (None, None))
    steps.update()
    guard = None if point is None else accuracy_guard(
        model, tokenizer, base_pack, point.strength, point.positions, problems,
        tokens=guard_tokens, margin=accuracy_margin, batch_size=batch_size, model_id=ref.model_id)
    if record is not None and guard is not None:
        record = replace(record, guard=guard)
    if point is not None and guard is not None and guard.passed:
        strength, policy = point.strength, point.positions
        reason = behaviour_reason(record, point, len(problems))
        # The neutral-text perplexity along the same grid, recorded (no budget applies).
        points = perplexity_sweep(model, tokenizer, base_pack, text, base, math.inf, grid, policy,
                                  ref.model_id)[1]
    else:
        strength, policy, points, reason = by_perplexity(
            model, tokenizer, base_pack, text, base, budget, fallback_grid,
            DEFAULT_POSITIONS if behaviour else positions, ref.model_id)
        if record is not None:
            criterion = "perplexity"
            reason = fallback_reason(record, reason)
            log.warning("%s: %s", pack.name, reason)
    steps.update()
    layers = pack.defaults.layers
    chosen = replace(base_pack, defaults=Defaults(strength, layers),
                     hook=Hook(op=pack.hook.op, positions=policy))
    control = replace(chosen, directions=random.directions)
    baseline = _row(model, tokenizer, problems, text, max_new_tokens, batch_size, ref.model_id,
                    unpatched_perplexity=base)
    steps.update()
    measured = _row(model, tokenizer, problems, text, max_new_tokens, batch_size, ref.model_id, chosen)
    controlled = _row(model, tokenizer, problems, text, max_new_tokens, batch_size, ref.model_id,
                      control)
    steps.update()
    steps.close()
    unit_own = own / own.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    cosine = {str(i): round(float(torch.dot(pack.directions[i].float(), unit_own[i])), 4)
              for i in layers}
    weight = next(model.parameters())
    calibration = Calibration(
        model_id=ref.model_id, revision=ref.revision, dtype=str(weight.dtype).removeprefix("torch."),
        device=str(weight.device), l2v_hub_version=__version__,
        created=datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        scale_measure="cot_norm", budget=budget, text_sha256=text_sha,
        problems={"source": problem_source,
                  "count": len(problems), "sha256": problems_sha256(problems)},
        pairs={"source": pairs.source, "count": len(pairs), "sha256": pairs.sha256(), "read": read},
        grid=tuple(points), strength=strength, positions=policy,
        reason=reason, baseline=baseline, pack=measured, control=controlled, control_seed=seed,
        cosine_own=cosine, criterion=criterion, behaviour=record,
    )
    return replace(chosen, version=new_version, calibration=calibration,
                   l2v_hub_version=__version__, created=calibration.created).validate()
