"""Contrastive extraction: every decoder block's output read over a span of each text (its last
real token by default), one forward pass per batch, and the per-block CoT direction with its
diagnostics.

Forward hooks on the source LLM's decoder blocks reduce each row's span ``[start, stop)`` to one
``[hidden]`` state while the pass runs (the token itself for a one-token span, else the float32
mean over the span), so no other token's state outlives its block. Texts are sorted by length
before batching (less padding); a float32 running sum of ``+state`` (CoT) and ``-state``
(direct) gives the mean difference without pairing rows up.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from tqdm.auto import tqdm

from ..errors import BuildError
from .pairs import Span

__all__ = [
    "Batch", "Extraction", "ExtractionMethod", "extract", "input_device", "make_batches", "run_forward",
]

log = logging.getLogger(__name__)
ExtractionMethod = Literal["mean-diff", "pca"]
PaddingSide = Literal["left", "right"]
# Where the decoder blocks live in the source LLMs the builder supports (a VLM is a target, never
# a source, so no VLM layouts here): Llama/Qwen2/Mistral/Gemma*, GPT2, GPT-NeoX, OPT.
_BLOCK_PATHS = ("model.layers", "transformer.h", "gpt_neox.layers", "model.decoder.layers")


@dataclass(frozen=True)
class Batch:
    """One padded batch: rows are texts; ``pair[i]`` and ``sign[i]`` (+1 CoT, -1 direct) say whose;
    ``start[i]`` and ``stop[i]`` the padded columns ``[start, stop)`` read from row i."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    start: torch.Tensor
    stop: torch.Tensor
    pair: torch.Tensor
    sign: torch.Tensor


@dataclass(frozen=True)
class Extraction:
    """Per source block: the direction, the mean difference and the diagnostics.

    ``state_norm`` is the mean norm of the captured states (CoT and direct alike), the scale
    against which the mean difference is small or large. ``dispersion`` and ``separation`` need the per-pair differences; they are ``None`` when those
    were not kept. ``projection`` is the 2-D PCA of the CoT and direct states at ``probe_block``.
    """

    method: ExtractionMethod
    count: int
    directions: torch.Tensor
    mean_difference: torch.Tensor
    state_norm: torch.Tensor
    dispersion: list[float] | None
    separation: list[float] | None
    projection: dict[str, Any] | None


def _decoder_blocks(model: torch.nn.Module) -> torch.nn.ModuleList:
    for path in _BLOCK_PATHS:
        node: Any = model
        for part in path.split("."):
            node = getattr(node, part, None)
        if isinstance(node, torch.nn.ModuleList) and len(node) > 0:
            return node
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    layers = getattr(decoder, "layers", None)
    if isinstance(layers, torch.nn.ModuleList) and len(layers) > 0:
        return layers
    raise BuildError(
        f"cannot find the decoder blocks of {type(model).__name__}: looked for "
        f"{', '.join(_BLOCK_PATHS)} and get_decoder().layers"
    )


def make_batches(
    token_pairs: Sequence[tuple[list[int], list[int]]],
    batch_size: int,
    *,
    pad_token_id: int = 0,
    padding_side: PaddingSide = "right",
    spans: Sequence[tuple[Span, Span]] | None = None,
) -> list[Batch]:
    """All 2N texts sorted by length (longest first) and padded into batches of ``batch_size``.

    ``spans``: per pair, the ``[start, stop)`` token indices of its (CoT, direct) texts to read
    (``builder.pairs.read_spans``); default: each text's last token."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise BuildError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if padding_side not in ("left", "right"):
        raise BuildError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    if spans is None:
        spans = [((len(cot) - 1, len(cot)), (len(direct) - 1, len(direct))) for cot, direct in token_pairs]
    if len(spans) != len(token_pairs):
        raise BuildError(f"spans must give one (CoT, direct) span per pair: {len(spans)} for "
                         f"{len(token_pairs)} pairs")
    rows = []
    for i, (pair, pair_spans) in enumerate(zip(token_pairs, spans, strict=True)):
        for ids, sign, (a, b) in zip(pair, (1, -1), pair_spans, strict=True):
            if not 0 <= a < b <= len(ids):
                raise BuildError(f"pair {i}: span [{a}, {b}) is not a non-empty range of its "
                                 f"{len(ids)} tokens")
            rows.append((ids, i, sign, a, b))
    rows.sort(key=lambda row: -len(row[0]))
    batches = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        width = len(chunk[0][0])
        ids = torch.full((len(chunk), width), pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        offsets = [width - len(c[0]) if padding_side == "left" else 0 for c in chunk]
        for r, (tokens, *_) in enumerate(chunk):
            ids[r, offsets[r] : offsets[r] + len(tokens)] = torch.tensor(tokens, dtype=torch.long)
            mask[r, offsets[r] : offsets[r] + len(tokens)] = 1
        # Positions count real tokens only, so a left-padded row sees the positions it would
        # see unpadded (absolute-position models such as GPT2 depend on it).
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        start = torch.tensor([o + c[3] for o, c in zip(offsets, chunk, strict=True)])
        stop = torch.tensor([o + c[4] for o, c in zip(offsets, chunk, strict=True)])
        batches.append(Batch(ids, mask, positions, start, stop,
                             torch.tensor([c[1] for c in chunk]), torch.tensor([c[2] for c in chunk])))
    return batches


def _forward_kwargs(model: torch.nn.Module) -> dict[str, Any]:
    # Only the block outputs are needed: ask for the logits of one position, not of every token.
    params = inspect.signature(model.forward).parameters
    for name in ("logits_to_keep", "num_logits_to_keep"):
        if name in params:
            return {name: 1, "use_cache": False}
    return {"use_cache": False}


def input_device(model: torch.nn.Module) -> torch.device:
    """Where the model's inputs go: its embedding's device, or, for weights offloaded by accelerate
    (on ``meta`` until each forward), the execution device of its accelerate hook."""
    embedding = model.get_input_embeddings()
    device = embedding.weight.device
    if device.type != "meta":
        return device
    for module in (embedding, model, *model.modules()):
        found = getattr(getattr(module, "_hf_hook", None), "execution_device", None)
        if found is not None:
            return torch.device(found)
    return torch.device("cpu")


def run_forward(model: torch.nn.Module, batch: Batch, device: torch.device | None = None) -> Any:
    """The exact forward pass the builder runs for ``batch`` (also the benchmark's baseline)."""
    device = device or input_device(model)
    return model(
        input_ids=batch.input_ids.to(device),
        attention_mask=batch.attention_mask.to(device),
        position_ids=batch.position_ids.to(device),
        **_forward_kwargs(model),
    )


def _capture(store: list[torch.Tensor | None], index: int, read: list[Any]) -> Callable:
    """A hook storing ``[rows, hidden]`` float32: each row's state over its span, from ``read``
    = ``[start, spans]`` of the batch in progress (``spans``: ``(start, stop)`` ints per row, or
    None when every span is one token, read with one gather at ``start``)."""

    def hook(_module: torch.nn.Module, _args: Any, output: Any) -> None:
        # transformers 5.x blocks return a Tensor, 4.x blocks a tuple whose first item is it.
        hidden = output[0] if isinstance(output, tuple) else output
        start, spans = read
        if spans is None:
            rows = torch.arange(hidden.shape[0], device=hidden.device)
            store[index] = hidden[rows, start.to(hidden.device)].float()
        else:  # one row at a time: only a span's own tokens are ever held in float32
            store[index] = torch.stack([hidden[r, a:b].float().mean(0)
                                        for r, (a, b) in enumerate(spans)])

    return hook


def _pca_direction(diffs: torch.Tensor) -> torch.Tensor:
    # Uncentred: the principal axis of the differences about zero. Centring would subtract the
    # mean difference, which is the very signal being read.
    _, _, vh = torch.linalg.svd(diffs.double(), full_matrices=False)
    axis = vh[0]
    return (axis if float((diffs.double() @ axis).mean()) >= 0 else -axis).float()


def _projection(cot: torch.Tensor, direct: torch.Tensor, block: int) -> dict[str, Any]:
    states = torch.cat([cot, direct]).double()
    centred = states - states.mean(0)
    _, s, vh = torch.linalg.svd(centred, full_matrices=False)
    coords = centred @ vh[:2].T
    share = (s[:2] ** 2 / (s**2).sum()).tolist()
    n = cot.shape[0]
    return {
        "block": block,
        "explained_variance": [round(x, 4) for x in share],
        "cot": [[round(x, 3) for x in row] for row in coords[:n].tolist()],
        "direct": [[round(x, 3) for x in row] for row in coords[n:].tolist()],
    }


@torch.inference_mode()
def extract(
    model: torch.nn.Module,
    token_pairs: Sequence[tuple[list[int], list[int]]],
    *,
    method: ExtractionMethod = "mean-diff",
    batch_size: int = 16,
    pad_token_id: int = 0,
    padding_side: PaddingSide = "right",
    keep_differences: bool = True,
    probe_block: int | None = None,
    progress: bool = True,
    spans: Sequence[tuple[Span, Span]] | None = None,
) -> Extraction:
    """Read every decoder block's output at the last real token of each CoT and direct text, or
    over ``spans``: per pair, the ``[start, stop)`` token indices of its (CoT, direct) texts
    (``builder.pairs.read_spans``), a longer span read as the float32 mean of its tokens' states.

    ``keep_differences`` keeps the per-pair differences (N x blocks x hidden float32 on the CPU)
    for the dispersion and separation diagnostics; ``pca`` always needs them. ``probe_block``
    also keeps that block's CoT and direct states for a 2-D PCA projection.
    """
    if method not in ("mean-diff", "pca"):
        raise BuildError(f"extraction must be 'mean-diff' or 'pca', got {method!r}")
    if not token_pairs:
        raise BuildError("extraction needs at least one pair, got none")
    blocks = _decoder_blocks(model)
    n, count = len(token_pairs), len(blocks)
    hidden = int(model.config.get_text_config().hidden_size)
    if probe_block is not None and not 0 <= probe_block < count:
        raise BuildError(f"probe_block must be in [0, {count - 1}], got {probe_block}")
    batches = make_batches(token_pairs, batch_size, pad_token_id=pad_token_id, padding_side=padding_side,
                           spans=spans)
    device = input_device(model)
    signed_sum = torch.zeros(count, hidden, dtype=torch.float32, device=device)
    norm_sum = torch.zeros(count, dtype=torch.float64, device=device)
    keep = keep_differences or method == "pca"
    diffs = torch.zeros(n, count, hidden) if keep else None
    probe = torch.zeros(2, n, hidden) if probe_block is not None else None
    store: list[torch.Tensor | None] = [None] * count
    read: list[Any] = [None, None]
    handles = [b.register_forward_hook(_capture(store, i, read)) for i, b in enumerate(blocks)]
    was_training = model.training
    model.eval()
    try:
        for batch in tqdm(batches, desc="extracting", unit="batch", disable=not progress):
            single = bool((batch.stop - batch.start == 1).all())
            read[:] = [batch.start, None if single else
                       list(zip(batch.start.tolist(), batch.stop.tolist(), strict=True))]
            run_forward(model, batch, device)
            if any(s is None for s in store):
                raise BuildError("a decoder block did not run during the forward pass")
            states = torch.stack([s.to(device) for s in store], dim=1)  # [rows, blocks, hidden]
            store[:] = [None] * count
            sign = batch.sign.to(device=device, dtype=torch.float32)
            signed_sum += torch.einsum("r,rbh->bh", sign, states)
            norm_sum += torch.linalg.vector_norm(states, dim=-1).sum(0)
            states = states.cpu()
            if diffs is not None:
                diffs.index_add_(0, batch.pair, states * batch.sign[:, None, None].float())
            if probe is not None:
                probe[(batch.sign < 0).long(), batch.pair] = states[:, probe_block]
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    mean = (signed_sum / n).cpu()
    directions = mean if diffs is None or method == "mean-diff" else torch.stack(
        [_pca_direction(diffs[:, b]) for b in range(count)])
    dispersion = separation = None
    if diffs is not None:
        dispersion = [float(diffs[:, b].double().var(0, unbiased=n > 1).sum()) for b in range(count)]
        separation = [float((diffs[:, b] @ directions[b] > 0).float().mean()) for b in range(count)]
    projection = None if probe is None else _projection(probe[0], probe[1], probe_block)
    state_norm = (norm_sum / (2 * n)).float().cpu()
    return Extraction(method, n, directions, mean, state_norm, dispersion, separation, projection)
