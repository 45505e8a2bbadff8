"""``build_pack``: from a source LLM and a target config to a validated pack.

extract (per source block) -> spectral.encode each block to the target hidden size -> relative-depth
layer map with spectral.layer_map / blend -> renormalise -> Pack with its diagnostics in stats.
The defaults and their reasons are in docs/method.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .. import spectral
from ..errors import BuildError
from ..metadata import Defaults, Hook, Method, ModelRef, Read, Scale, default_pack_name
from ..pack import Pack
from .extract import ExtractionMethod, extract
from .generate import generate_pairs
from .pairs import PairSet, check_read, load_pairs, read_spans, tokenize_pairs
from .target import TargetSpec, model_ref_from_config, read_target, resolve_model_id

__all__ = [
    "DEFAULT_PAIRS",
    "DEFAULT_POSITIONS",
    "DEFAULT_STRENGTH",
    "KEEP_FRACTION",
    "build_pack",
    "build_packs",
    "default_keep",
    "default_layers",
    "paper_keep",
]

# The authors' code keeps k = 200 bins of a 3584-d model's 1793 (11.2%); the same fraction of the
# source's bins carries that cut to any size (paper_keep). Not the default: low-passed so, the
# 1.5B's direction pushed the 0.5B AWAY from reasoning, where the unfiltered one pushed it
# towards it (docs/reasoning.md, "Transfer").
KEEP_FRACTION = 200 / 1793
# lambda for a pack that is not calibrated, in units of its s_i (token_spread): below the smallest
# strength at which a CoT direction first cost +10% neutral-text perplexity on the real models
# measured (0.044 on Qwen2.5-Coder-0.5B; docs/calibration.md, "Choosing s_i").
DEFAULT_STRENGTH = 0.03
# s_i of a pack built without the target's weights: measured by the loader at patch time.
UNCALIBRATED_SCALE = "token_spread"
_BAND = 3
# Issue 18 (docs/reasoning.md): the prompt contrast read at the last prompt token, steered there
# and at every generated token, is what moved the 0.5B's reasoning against its random control;
# the worked-vs-bare-answer contrast and the `generated` policy moved it less or not at all.
DEFAULT_PAIRS = "prompt-contrast"
DEFAULT_POSITIONS = "prompt_last_and_generated"


def default_keep(source_hidden: int, target_hidden: int) -> int:
    """Every frequency bin both sizes can hold: no low-pass beyond the one Fourier resampling to
    a smaller target makes (the default since docs/reasoning.md; the paper's cut: paper_keep)."""
    return min(spectral.num_bins(source_hidden), spectral.num_bins(target_hidden))


def paper_keep(source_hidden: int, target_hidden: int) -> int:
    """``KEEP_FRACTION`` of the source's frequency bins (the authors' k = 200 of 1793), within what
    both sizes can hold: ``l2v-hub build --keep`` with this value is the paper's low-pass."""
    limit = default_keep(source_hidden, target_hidden)
    return max(1, min(limit, round(spectral.num_bins(source_hidden) * KEEP_FRACTION)))


def default_layers(num_layers: int) -> tuple[int, ...]:
    """The middle band of the target: the ``3`` blocks around its middle (all of a shallower one)."""
    width = min(_BAND, num_layers)
    start = (num_layers - width) // 2
    return tuple(range(start, start + width))


def _energy_share(direction: torch.Tensor, keep: int) -> float:
    total = float(direction.double().square().sum())
    if total == 0:
        return 0.0
    return float(spectral.lowpass(direction.double(), keep).square().sum()) / total


def _spectrum(direction: torch.Tensor) -> list[float]:
    # Power per non-negative frequency bin, with the mirrored negative bins folded in, as a share
    # of the total: what the plot draws against the cutoff.
    power = torch.fft.rfft(direction.double()).abs().square()
    power[1 : (direction.shape[-1] + 1) // 2] *= 2
    return [float(f"{x:.4g}") for x in (power / power.sum()).tolist()]


def _round(values: list[float] | None, i: int) -> float | None:
    return None if values is None else float(f"{values[i]:.6g}")


def _stats(extraction: Any, keep: int, probe: int, source_blocks: list[int]) -> dict[str, Any]:
    layers = []
    for b in range(extraction.directions.shape[0]):
        layers.append({
            "block": b,
            "norm": float(f"{float(extraction.mean_difference[b].norm()):.6g}"),
            "state_norm": float(f"{float(extraction.state_norm[b]):.6g}"),
            "dispersion": _round(extraction.dispersion, b),
            "separation": _round(extraction.separation, b),
            "energy_in_band": float(f"{_energy_share(extraction.directions[b], keep):.6g}"),
        })
    return {
        "extraction": extraction.method,
        "pairs": extraction.count,
        "lowpass_keep": keep,
        "default_source_blocks": source_blocks,
        "layers": layers,
        "spectrum": {"block": probe, "power": _spectrum(extraction.directions[probe])},
        "projection": extraction.projection,
    }


def _encode(directions: torch.Tensor, target: ModelRef, keep: int) -> torch.Tensor:
    try:
        encoded = spectral.encode(directions.float(), target.hidden_size, keep)
    except ValueError as exc:
        raise BuildError(f"cannot encode the source directions: {exc}") from None
    rows = [spectral.blend(encoded, p) for p in spectral.layer_map(directions.shape[0], target.num_layers)]
    out = torch.stack(rows)
    norms = out.norm(dim=-1, keepdim=True)
    if bool((norms < 1e-6).any()):
        raise BuildError("two neighbouring source directions cancel out in the layer map")
    return (out / norms).float().contiguous()


def build_pack(
    model: Any,
    tokenizer: Any,
    target: str | Path | TargetSpec | ModelRef,
    pairs: str | Path | PairSet | None = None,
    *,
    extraction: ExtractionMethod = "mean-diff",
    keep: int | None = None,
    batch_size: int = 16,
    progress: bool = True,
    source_id: str | None = None,
    target_id: str | None = None,
    name: str | None = None,
    version: str = "0.1.0",
    strength: float = DEFAULT_STRENGTH,
    layers: tuple[int, ...] | None = None,
    generate: bool = False,
    diagnostics: bool = True,
    padding_side: str | None = None,
    read: Read = "last",
) -> Pack:
    """Extract the CoT direction of every block of ``model`` and encode it into a pack for ``target``.

    ``target``: a Hub id or local folder (only its config is read), or a ``TargetSpec``.
    ``pairs``: ``"prompt-contrast"`` (default: :data:`DEFAULT_PAIRS`), ``"builtin"``, a ``.jsonl``
    path or a ``PairSet``;
    ``generate=True`` replaces their answers with the model's own. ``keep``: low-pass bins of the
    source spectrum (default :func:`default_keep`). ``source_id`` / ``target_id``: the Hub ids to
    record when the models were loaded from local paths. ``diagnostics=False`` keeps no per-pair
    differences (mean-diff only), leaving dispersion and separation out of the stats.
    ``read``: which states of each text are read (:data:`l2v_hub.metadata.READS`; recorded as
    ``method.token``): ``last`` (its last token), ``response_mean`` (the mean over the assistant
    response's tokens) or ``response_first`` (its first response token), the last two for
    response-style pairs only (``builder.pairs.read_spans``; ``BuildError`` otherwise).
    """
    return build_packs(
        model, tokenizer, [target], pairs, extraction=extraction, keep=keep, batch_size=batch_size,
        progress=progress, source_id=source_id, target_ids=[target_id], names=[name], version=version,
        strength=strength, layers=layers, generate=generate, diagnostics=diagnostics,
        padding_side=padding_side, read=read,
    )[0]


def build_packs(
    model: Any,
    tokenizer: Any,
    targets: Sequence[str | Path | TargetSpec | ModelRef],
    pairs: str | Path | PairSet | None = None,
    *,
    extraction: ExtractionMethod = "mean-diff",
    keep: int | None = None,
    batch_size: int = 16,
    progress: bool = True,
    source_id: str | None = None,
    target_ids: Sequence[str | None] | None = None,
    names: Sequence[str | None] | None = None,
    version: str = "0.1.0",
    strength: float = DEFAULT_STRENGTH,
    layers: tuple[int, ...] | None = None,
    generate: bool = False,
    diagnostics: bool = True,
    padding_side: str | None = None,
    read: Read = "last",
) -> list[Pack]:
    """One pack per target from ONE extraction: the source is read once, then encoded per target.

    Options as :func:`build_pack`; ``target_ids`` and ``names`` go with ``targets`` one by one.
    ``layers`` (when given) applies to every target. The 2-D projection in the stats is taken at
    the first target's probe block (the targets' probe blocks agree when their depths do).
    """
    if not targets:
        raise BuildError("build_packs needs at least one target, got none")
    target_ids = list(target_ids or [None] * len(targets))
    names = list(names or [None] * len(targets))
    if len(target_ids) != len(targets) or len(names) != len(targets):
        raise BuildError("target_ids and names must have one item per target")
    target_refs = [read_target(t, model_id=i) for t, i in zip(targets, target_ids, strict=True)]
    loaded_from = getattr(model.config, "_name_or_path", "") or ""
    if source_id is None and not loaded_from:
        raise BuildError("the model does not record where it was loaded from: pass source_id='org/name'")
    source_ref = model_ref_from_config(model.config, source_id or resolve_model_id(loaded_from, None, "llm"))
    plans = [_plan(source_ref, t, keep, layers) for t in target_refs]
    if not (isinstance(strength, int | float) and math.isfinite(strength) and strength >= 0):
        raise BuildError(f"strength must be a finite number >= 0, got {strength!r}")
    pair_set = load_pairs(DEFAULT_PAIRS if pairs is None else pairs)
    check_read(read)  # before any generation: a typo fails at once
    if generate:
        pair_set = generate_pairs(model, tokenizer, pair_set, batch_size=batch_size, progress=progress)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    tokens = tokenize_pairs(pair_set, tokenizer)
    result = extract(
        model,
        tokens,
        spans=read_spans(pair_set, tokenizer, tokens, read),
        method=extraction,
        batch_size=batch_size,
        pad_token_id=pad or 0,
        padding_side=padding_side or getattr(tokenizer, "padding_side", "right") or "right",
        keep_differences=diagnostics,
        probe_block=plans[0][2][len(plans[0][2]) // 2],
        progress=progress,
    )
    packs = []
    for target_ref, name, (t_keep, t_layers, source_blocks) in zip(target_refs, names, plans, strict=True):
        pack = Pack(
            name=name or default_pack_name(source_ref.model_id, target_ref.model_id),
            version=version,
            source=source_ref,
            target=target_ref,
            method=Method(extraction=extraction, pairs=pair_set.info(), lowpass_keep=t_keep, token=read),
            directions=_encode(result.directions, target_ref, t_keep),
            defaults=Defaults(strength=float(strength), layers=t_layers),
            hook=Hook(op="norm_preserving_add", positions=DEFAULT_POSITIONS),
            scale=Scale(UNCALIBRATED_SCALE),
            stats=_stats(result, t_keep, source_blocks[len(source_blocks) // 2], source_blocks),
        )
        packs.append(pack.validate())
    return packs


def _plan(
    source: ModelRef, target: ModelRef, keep: int | None, layers: tuple[int, ...] | None
) -> tuple[int, tuple[int, ...], list[int]]:
    """``(keep, layers, source blocks the layers read)`` for one target, checked."""
    keep = default_keep(source.hidden_size, target.hidden_size) if keep is None else keep
    if isinstance(keep, bool) or not isinstance(keep, int) or not 1 <= keep <= spectral.num_bins(source.hidden_size):
        raise BuildError(f"keep must be an int in [1, {spectral.num_bins(source.hidden_size)}], got {keep!r}")
    layers = default_layers(target.num_layers) if layers is None else tuple(layers)
    if not layers or any(not 0 <= i < target.num_layers for i in layers):
        raise BuildError(f"layers must be block indices in [0, {target.num_layers - 1}], got {list(layers)}")
    positions = spectral.layer_map(source.num_layers, target.num_layers)
    return keep, layers, sorted({round(positions[i]) for i in layers})
