"""The ``l2v_hub`` model type of lmms-eval: a transformers VLM asked through its processor and chat
template, steered by a pack as ``l2v_hub.patch`` steers it (docs/eval.md).

    lmms-eval eval --model l2v_hub --tasks mmstar --log_samples --output_path runs/pack \\
        --model_args pretrained=ID,pack=auto,strength=0.5,positions=generated,control=none

Registered through the ``lmms_eval.models`` entry point (:func:`manifest`); this module imports
lmms-eval, so only lmms-eval imports it. ``model_args``:

- ``pretrained``: a Hub id or a local model folder (``l2v_hub.builder.load_model``);
- ``pack``: ``auto`` (the pack a registry names for the model's id, default), a pack folder,
  ``org/name[@revision]``, or ``none`` (unpatched);
- ``strength`` (units of s_i) and ``positions``: default the pack's own;
- ``control``: ``none`` (default) or ``random``: the pack's seeded random control instead of the
  pack, exactly the control row of ``l2v-hub eval`` (``l2v_hub.evaluation.rows.plan_rows``:
  same s_i, strength, blocks, op and positions), seeded by ``seed`` (default 0);
- ``batch_size``, ``dtype``, ``device``, ``device_map``, ``model_id`` (Hub id of a local folder),
  ``max_new_tokens`` (when a task sets none; default 1024), ``trust_remote_code``.

``generate_until`` answers as ``l2v-hub eval`` does (``l2v_hub.measure``: the same prompt, batch
encoding and greedy decoding), cut at the task's ``until`` strings. ``loglikelihood`` scores a
continuation after its context as ``l2v_hub.measure.text.written_logits`` scores written text: the
context in one forward pass, the continuation on its cache, so that the pack steers the
continuation's tokens as it steers generated ones.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import torch
from lmms_eval.api.instance import Instance
from lmms_eval.api.model import lmms
from lmms_eval.models.registry_v2 import ModelManifest
from tqdm.auto import tqdm

from ..builder import load_model, load_processor
from ..errors import ArgumentError
from ..evaluation.rows import CONTROLS, plan_rows
from ..loader import as_pack, patch
from ..loader.fit import check_dims
from ..measure.answers import generate_texts, stops_for
from ..measure.prompts import chat_prompt, encode_prompts, tokenizer_of
from ..measure.text import written_logits

__all__ = ["L2VHubModel", "manifest"]

log = logging.getLogger(__name__)
# Generation options of lmms-eval tasks passed on to ``generate``; others are named and ignored.
_SAMPLING = ("do_sample", "temperature", "top_p", "num_beams")


def manifest() -> ModelManifest:
    """The ``lmms_eval.models`` entry point: the model type ``l2v_hub``."""
    return ModelManifest(model_id="l2v_hub",
                         simple_class_path=f"{__name__}.{L2VHubModel.__name__}")


def _number(name: str, value: Any, kind: Callable[[Any], Any]) -> Any:
    try:
        return None if value is None else kind(value)
    except (TypeError, ValueError):
        raise ArgumentError(f"model_args {name} must be a number, got {value!r}") from None


def _flag(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


class L2VHubModel(lmms):
    """A VLM (or LLM) for lmms-eval, steered by a pack (module docstring for the arguments).

    Raises ``ArgumentError`` for bad ``model_args`` and the pack errors ``l2v_hub.patch``
    raises, before the first request. ``applied`` records what steers the model (None:
    unpatched): pack ``name@version``, ``control``, strength, positions, blocks, op, seed.
    """

    is_simple = True

    def __init__(self, pretrained: str, pack: str = "auto", strength: Any = None,
                 positions: str | None = None, control: str = "none", seed: Any = 0,
                 batch_size: Any = 1, dtype: str | None = None, device: str | None = None,
                 device_map: str | None = None, model_id: str | None = None,
                 max_new_tokens: Any = 1024, trust_remote_code: Any = False,
                 max_batch_size: Any = None, **unknown: Any) -> None:
        super().__init__()
        # lmms-eval passes its own --max_batch_size to every model; batches here are batch_size.
        del max_batch_size
        if unknown:
            raise ArgumentError(f"model_args: unknown {', '.join(sorted(unknown))}; expected "
                                "pretrained, pack, strength, positions, control, seed, "
                                "batch_size, dtype, device, device_map, model_id, "
                                "max_new_tokens, trust_remote_code")
        if control not in CONTROLS:
            raise ArgumentError(f"model_args control must be one of {', '.join(CONTROLS)}, "
                                f"got {control!r}")
        if pack == "none" and control != "none":
            raise ArgumentError("model_args control=random needs a pack: it is the pack's "
                                "random control (pack=none runs unpatched)")
        self._batch = _number("batch_size", batch_size, int)
        self._max_new = _number("max_new_tokens", max_new_tokens, int)
        if self._batch < 1 or self._max_new < 1:
            raise ArgumentError(f"model_args batch_size and max_new_tokens must be >= 1, got "
                                f"{self._batch} and {self._max_new}")
        chosen = _number("strength", strength, float)
        seed = _number("seed", seed, int)
        trust = _flag(trust_remote_code)
        model, tokenizer = load_model(pretrained, device=device, dtype=dtype,
                                      device_map=device_map, trust_remote_code=trust)
        self.model = model
        self.processor = load_processor(pretrained, tokenizer, model, trust)
        self.applied: dict[str, Any] | None = None
        self._patch = None
        if pack != "none":
            found = as_pack(None if pack == "auto" else pack, model, model_id)
            check_dims(model, found)
            kind = "control" if control == "random" else "pack"
            spec = next(s for s in plan_rows([found], None if chosen is None else (chosen,),
                                             positions, control, "plain", False, seed)
                        if s.kind == kind)
            # Held for the model's lifetime: every request of the run is steered alike.
            self._patch = patch(model, spec.pack, strength=spec.strength,
                                positions=spec.positions, tokenizer=tokenizer_of(self.processor),
                                model_id=model_id, strict=False)
            self.applied = {"pack": f"{found.name}@{found.version}",
                            "control": control if kind == "control" else None,
                            "strength": spec.strength, "positions": spec.positions,
                            "layers": list(found.defaults.layers), "op": found.hook.op,
                            "seed": seed}
        # Printed where lmms-eval's own log goes, so that every run names what steered it.
        log.warning("l2v_hub: %s on %s", json.dumps(self.applied or "unpatched"), pretrained)

    @property
    def batch_size(self) -> int:
        return self._batch

    def _visuals(self, doc_to_visual: Any, doc_id: int, task: str, split: str) -> list[Any]:
        from PIL import Image

        got = doc_to_visual(self.task_dict[task][split][doc_id]) if doc_to_visual else None
        out = []
        for v in got or []:
            if not isinstance(v, Image.Image):
                raise ArgumentError(f"task {task!r} doc {doc_id}: the l2v_hub model takes images "
                                    f"(PIL), got a {type(v).__name__} visual")
            out.append(v.convert("RGB"))
        return out

    def _prompt(self, context: str, visuals: list[Any], doc_id: int) -> str:
        return chat_prompt(self.processor, context, len(visuals), what=f"doc {doc_id}")

    def generate_until(self, requests: list[Instance]) -> list[str]:
        """One answer per request, in order: ``(context, gen_kwargs, doc_to_visual, doc_id,
        task, split)``; batched by generation options and image count."""
        rows = []
        for r in requests:
            context, options, doc_to_visual, doc_id, task, split = r.args
            rows.append((context, dict(options or {}),
                         self._visuals(doc_to_visual, doc_id, task, split), doc_id))
        groups: dict[tuple[str, int], list[int]] = {}
        for i, (_, options, visuals, _) in enumerate(rows):
            key = (json.dumps(options, sort_keys=True, default=str), len(visuals))
            groups.setdefault(key, []).append(i)
        out: list[str] = [""] * len(rows)
        with tqdm(total=len(rows), desc="l2v_hub", disable=self.rank != 0) as bar:
            for order in groups.values():
                for start in range(0, len(order), self._batch):
                    chunk = order[start:start + self._batch]
                    for i, text in zip(chunk, self._answer([rows[i] for i in chunk]), strict=True):
                        out[i] = text
                    bar.update(len(chunk))
        return out

    def _answer(self, rows: list[tuple[str, dict[str, Any], list[Any], int]]) -> list[str]:
        options = dict(rows[0][1])
        until = options.pop("until", None) or ()
        until = (until,) if isinstance(until, str) else tuple(until)
        max_new = int(options.pop("max_new_tokens", self._max_new))
        sampling = {k: options.pop(k) for k in _SAMPLING if k in options}
        if float(sampling.get("temperature") or 0) == 0 and not sampling.get("do_sample"):
            sampling = {"num_beams": sampling.get("num_beams") or 1}  # greedy, as l2v-hub eval
        else:
            sampling["do_sample"] = True
        if options:
            log.info("l2v_hub: ignoring generation options %s", sorted(options))
        texts = [self._prompt(c, v, d) for c, _, v, d in rows]
        images = [v for _, _, v, _ in rows] if rows[0][2] else None
        inputs = encode_prompts(self.processor, texts, images)
        answers = generate_texts(self.model, self.processor, inputs, max_new,
                                 stops_for(texts[0]) + until, **sampling)
        return [text for text, _ in answers]

    def loglikelihood(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        """``(log p(continuation | context), whether greedy decoding gives it)`` per request
        ``(context, doc_to_target, doc_to_visual, doc_id, task, split)``, natural log, summed over
        the continuation's tokens (which follow the context's tokens: a tokenizer that merges
        across the boundary is refused)."""
        out = []
        for r in tqdm(requests, desc="l2v_hub", disable=self.rank != 0):
            context, target, doc_to_visual, doc_id, task, split = r.args
            doc = self.task_dict[task][split][doc_id]
            continuation = target if isinstance(target, str) else target(doc)
            visuals = self._visuals(doc_to_visual, doc_id, task, split)
            prompt = self._prompt(context, visuals, doc_id)
            out.append(self._score(prompt, str(continuation), visuals or None, doc_id))
        return out

    def _score(self, prompt: str, continuation: str, visuals: list[Any] | None,
               doc_id: int) -> tuple[float, bool]:
        head = encode_prompts(self.processor, [prompt], [visuals] if visuals else None)
        whole = encode_prompts(self.processor, [prompt + continuation],
                               [visuals] if visuals else None)["input_ids"][0]
        ids = head.pop("input_ids")
        head.pop("attention_mask", None)  # one row, no padding
        width = ids.shape[1]
        if not torch.equal(whole[:width], ids[0]) or len(whole) == width:
            raise ArgumentError(f"doc {doc_id}: the continuation {continuation!r} does not "
                                "tokenize after its context")
        rest = whole[width:]
        logits = written_logits(self.model, ids, rest[None], **head)[:-1]
        logp = torch.log_softmax(logits, dim=-1).gather(1, rest[:, None].to(logits.device))
        return float(logp.sum()), bool(torch.equal(logits.argmax(-1).cpu(), rest))

    def generate_until_multi_round(self, requests: list[Instance]) -> list[str]:
        raise NotImplementedError("the l2v_hub model answers single-round tasks only")
