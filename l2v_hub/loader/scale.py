"""s_i measured on the model itself: the per-block scale an uncalibrated v2 pack leaves to the
loader, and the token measures the calibration compares (docs/method.md, "The scale s_i").

One forward of a fixed neutral paragraph (``l2v_hub/data/neutral_text.txt``, shipped in the
package; families whose forward needs an image get one no token sees, ``text_only_inputs``, or
run it on their language model, ``text_only_model``) with a hook on every text-decoder block; the first token is left out of every measure,
because it is an attention sink whose state is 15-180x the others' norm.
"""

from __future__ import annotations

import hashlib
import weakref
from importlib import resources
from typing import Any

import torch
from torch import nn

from ..errors import IncompatiblePackError, quote
from .families import text_only_inputs, text_only_model
from .layers import find_blocks

__all__ = ["NEUTRAL_TEXT", "TOKEN_MEASURES", "block_outputs", "measure_scales", "neutral_text",
           "token_measures"]

NEUTRAL_TEXT = "neutral_text.txt"
TOKEN_MEASURES = ("token_spread", "token_norm")
# model -> (its weights' fingerprint when measured, measure -> s_i of every block)
_MEASURED: weakref.WeakKeyDictionary[nn.Module, tuple[Any, dict[str, torch.Tensor]]] = (
    weakref.WeakKeyDictionary())


def neutral_text() -> tuple[str, str]:
    """The fixed neutral paragraph and its sha256 (what a calibration records)."""
    text = resources.files("l2v_hub.data").joinpath(NEUTRAL_TEXT).read_text(encoding="utf-8").strip()
    return text, hashlib.sha256(text.encode()).hexdigest()


@torch.inference_mode()
def block_outputs(model: nn.Module, input_ids: torch.Tensor, layers_path: str | None = None,
                  attention_mask: torch.Tensor | None = None) -> list[torch.Tensor]:
    """The output of every text-decoder block for ``input_ids`` ([B, T]): one [B, T, H] float32
    tensor per block, on the CPU."""
    blocks = find_blocks(model, layers_path).blocks
    outputs: list[torch.Tensor | None] = [None] * len(blocks)

    def keep(i: int) -> Any:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            hidden = output[0] if isinstance(output, tuple) else output
            outputs[i] = hidden.detach().float().cpu()
        return hook

    handles = [b.register_forward_hook(keep(i)) for i, b in enumerate(blocks)]
    try:
        device = next((p.device for p in model.parameters() if p.device.type != "meta"),
                      torch.device("cpu"))
        input_ids = input_ids.to(device)
        kwargs = {} if attention_mask is None else {"attention_mask": attention_mask.to(device)}
        text_only_model(model)(input_ids=input_ids, use_cache=False, **kwargs,
                               **text_only_inputs(model, input_ids))
    finally:
        for handle in handles:
            handle.remove()
    missing = [i for i, o in enumerate(outputs) if o is None]
    if missing:  # Mllama's cross-attention blocks do nothing without an image
        for i in missing:
            outputs[i] = torch.full_like(next(o for o in outputs if o is not None), float("nan"))
    return outputs  # type: ignore[return-value]


def token_measures(states: torch.Tensor) -> dict[str, float]:
    """From one block's [T, H] states (first token included, then dropped): ``token_spread``, the
    median distance of the ordinary tokens from their mean, and ``token_norm``, their median norm."""
    ordinary = states[1:].double()
    return {
        "token_spread": float((ordinary - ordinary.mean(0)).norm(dim=-1).median()),
        "token_norm": float(ordinary.norm(dim=-1).median()),
    }


def _tokenizer_for(model: nn.Module) -> Any:
    from transformers import AutoTokenizer

    name = getattr(model, "name_or_path", None) or getattr(model.config, "_name_or_path", None)
    try:
        return AutoTokenizer.from_pretrained(name)
    except Exception as exc:  # any failure means the same thing here: no tokenizer at hand
        raise IncompatiblePackError(
            f"the pack is not calibrated, so its scale s_i must be measured on this model once, "
            f"which needs its tokenizer; none could be loaded from {name!r} ({quote(exc)}). "
            "Pass tokenizer= to l2v_hub.patch, or use a calibrated pack (l2v-hub calibrate)"
        ) from None


def measure_scales(model: nn.Module, measure: str = "token_spread", tokenizer: Any = None,
                   layers_path: str | None = None) -> torch.Tensor:
    """``measure`` (``token_spread`` or ``token_norm``) at every text-decoder block of ``model``
    on the neutral text: a float32 tensor [num_layers], in the model's own units.

    Measured once per model object and measure, then reused while the model's parameters stay the
    same (``_fingerprint``: shapes, dtypes, devices and values). Raises
    ``IncompatiblePackError`` when a measured value is not finite in float32, or when no tokenizer
    is given and none can be loaded from the model's ``name_or_path``.
    """
    if measure not in TOKEN_MEASURES:
        raise IncompatiblePackError(
            f"scale measure {measure!r} cannot be measured at patch time (only "
            f"{', '.join(TOKEN_MEASURES)}); calibrate the pack on the model: l2v-hub calibrate"
        )
    weights = _fingerprint(model)
    kept = _MEASURED.get(model)
    if kept is not None and _same(kept[0], weights) and measure in kept[1]:
        return kept[1][measure]
    tok = tokenizer if tokenizer is not None else _tokenizer_for(model)
    text, _ = neutral_text()
    ids = torch.tensor([tok(text)["input_ids"]])
    outputs = block_outputs(model, ids, layers_path)
    result = {}
    for name in TOKEN_MEASURES:
        values = torch.tensor([token_measures(o[0])[name] for o in outputs], dtype=torch.float32)
        # A block that did not run on text (Mllama's cross-attention) takes the others' median.
        result[name] = torch.where(values.isnan(), values.nanmedian(), values)
    beyond = [i for i, x in enumerate(result[measure].tolist()) if not x < float("inf")]
    if beyond:
        raise IncompatiblePackError(
            f"the {measure} measured at blocks {beyond} of this model is beyond float32's range "
            "(or undefined), so no push can be formed there; calibrate the pack on the model "
            "(l2v-hub calibrate) or check the model's weights")
    _MEASURED[model] = (weights, result)
    return result[measure]


def _fingerprint(model: nn.Module) -> tuple[tuple[Any, ...], torch.Tensor]:
    """What the measurement depends on besides the text: every parameter's and buffer's shape,
    dtype and device, and the float32 sum of its values (on the CPU). ``model.to(bfloat16).to(float32)``
    rounds the weights but may reuse their memory, so addresses and in-place versions cannot
    tell; the sums do, for one read of the weights (a fraction of the measuring forward).
    Offloaded (meta) tensors count by their shape only."""
    tensors = [*model.parameters(), *model.buffers()]
    layout = tuple((tuple(p.shape), p.dtype, p.device) for p in tensors)
    sums: dict[torch.device, list[torch.Tensor]] = {}
    with torch.no_grad():
        for p in tensors:
            if p.device.type != "meta":
                sums.setdefault(p.device, []).append(p.detach().sum(dtype=torch.float32))
    values = [torch.stack(s).cpu() for s in sums.values()]  # one copy per device
    return layout, torch.cat(values) if values else torch.zeros(0)


def _same(a: tuple[tuple[Any, ...], torch.Tensor], b: tuple[tuple[Any, ...], torch.Tensor]) -> bool:
    return a[0] == b[0] and torch.equal(a[1], b[1])
