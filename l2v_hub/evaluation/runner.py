"""``l2v_hub.evaluate``: what a pack does to a model, against unpatched, a random-direction control
and the explicit chain-of-thought prompt, on problems with known answers (docs/eval.md)."""

from __future__ import annotations

import logging
import platform
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from .._version import __version__
from ..errors import ArgumentError
from ..loader import as_pack, patch
from ..loader.fit import check_dims, model_hub_id
from ..loader.patch import check_strength  # the strengths patch() accepts, checked up front
from ..measure import (
    REGIMES,
    Answer,
    answer_problems,
    is_step_by_step,
    neutral_text,
    perplexity,
    score,
    summarize,
)
from ..measure.problems import Problem, builtin_problems, load_problems, problems_sha256
from ..measure.prompts import tokenizer_of
from ..measure.stats import compare, power_of
from ..metadata import POSITIONS
from ..pack import Pack, PathLike
from .report import EvalReport, RowResult
from .rows import CONTROLS, RowSpec, plan_rows
from .store import AnswerStore

__all__ = ["evaluate", "select_problems"]

log = logging.getLogger(__name__)
PackArg = Pack | PathLike | None


def select_problems(problems: Sequence[Problem] | PathLike, limit: int | None = None
                    ) -> tuple[list[Problem], str]:
    """``(problems, source)``: ``"builtin"`` (the held-out set), a JSONL path or given problems;
    ``limit`` keeps that many, evenly spaced (every kind of a sorted file stays in)."""
    if isinstance(problems, str | Path):
        source = str(problems)
        every = builtin_problems("heldout", None) if source == "builtin" else load_problems(problems)
    else:
        every, source = list(problems), "given"
    if not every:
        raise ArgumentError("problems: none given")
    twice = [i for i, n in Counter(p.id for p in every).items() if n > 1]
    if twice:  # answers are kept and resumed by id
        raise ArgumentError(f"problems: id {twice[0]!r} is given more than once; ids must be unique")
    if limit is not None:
        if limit < 1:
            raise ArgumentError(f"limit must be >= 1, got {limit!r}")
        if limit < len(every):
            every = [every[i * len(every) // limit] for i in range(limit)]
            source += f"[{limit} evenly spaced]"
    return every, source


def _packs(pack: PackArg | Sequence[PackArg], model: Any, model_id: str | None) -> list[Pack]:
    many = pack if isinstance(pack, list | tuple) else [pack]
    return [as_pack(p, model, model_id) for p in many]


def _check_rows(model: Any, packs: list[Pack], strengths: tuple[float, ...] | None,
                positions: str | None) -> None:
    """What ``patch`` would refuse at a pack row, refused before the first answer."""
    for s in strengths or ():
        check_strength(s)
    if positions is not None and positions not in POSITIONS:
        raise ArgumentError(f"positions must be one of {', '.join(map(repr, POSITIONS))}, got "
                            f"{positions!r}")
    for p in packs:
        check_dims(model, p)


def _run_row(spec: RowSpec, key: str, model: Any, processor: Any, problems: list[Problem],
             store: AnswerStore, bar: Any, max_new_tokens: int, batch_size: int,
             model_id: str | None) -> None:
    todo = [p for p in problems if store.get(key, p) is None]
    bar.update(len(problems) - len(todo))
    need_ppl = spec.kind != "reference" and key not in store.perplexities
    if not todo and not need_ppl:
        return
    by_id = {p.id: p for p in problems}
    bar.set_postfix_str(spec.name)

    clock = [time.perf_counter()]

    def keep(done: list[Answer]) -> None:
        now = time.perf_counter()
        store.put(key, by_id, done, now - clock[0])
        clock[0] = now
        bar.update(len(done))

    handle = None
    if spec.pack is not None:
        handle = patch(model, spec.pack, strength=spec.strength, positions=spec.positions,
                       tokenizer=tokenizer_of(processor), model_id=model_id, strict=False)
    try:
        if need_ppl:
            store.put_perplexity(key, perplexity(model, tokenizer_of(processor), neutral_text()[0]))
        if todo:
            clock[0] = time.perf_counter()
            answer_problems(model, processor, todo, max_new_tokens, batch_size, spec.regime,
                            on_batch=keep)
    finally:
        if handle is not None:
            handle.remove()


def _rescored(answer: Answer, problem: Problem) -> Answer:
    """``answer`` judged by the scoring rules of this version (a resumed answer may have been
    kept by an older one): final answer, correctness and step-by-step, from its text."""
    final, correct = score(answer.text, problem)
    return replace(answer, final=final, correct=correct,
                   step_by_step=is_step_by_step(answer.text, problem.question, answer.truncated))


def _result(spec: RowSpec, kept: list[Answer], problems: list[Problem], ppl: float | None) -> RowResult:
    answers = [_rescored(a, p) for a, p in zip(kept, problems, strict=True)]
    s = summarize(answers)
    p = spec.pack
    return RowResult(
        spec.name, spec.kind, spec.regime, None if p is None else f"{p.name}@{p.version}",
        spec.strength, spec.positions, None if p is None else list(p.defaults.layers),
        None if p is None else p.hook.op, len(answers), sum(a.correct for a in answers),
        s["accuracy"], s["step_by_step"], round(s["answer_tokens"], 2), s["truncated"],
        round(s["non_ascii"], 5), None if ppl is None else round(ppl, 4), answers=s["answers"])


def _compared(rows: list[RowResult], specs: list[RowSpec], seed: int) -> list[RowResult]:
    right = {r.name: [a["correct"] for a in r.answers] for r in rows}
    out = []
    for r, spec in zip(rows, specs, strict=True):
        if r.kind == "unpatched":
            out.append(r)
            continue
        against = [compare(right[r.name], right["unpatched"], "unpatched", seed=seed)]
        if spec.control is not None:
            against.append(compare(right[r.name], right[spec.control], spec.control, seed=seed))
        power = power_of(against[-1], r.n) if r.kind == "pack" else None
        out.append(RowResult(**{**r.__dict__, "comparisons": against,
                                "power": None if power is None else round(power, 3)}))
    return out


def evaluate(
    model: Any,
    processor_or_tokenizer: Any,
    pack: PackArg | Sequence[PackArg],
    problems: Sequence[Problem] | PathLike = "builtin",
    *,
    strengths: Sequence[float] | None = None,
    control: str = "random",
    positions: str | None = None,
    prompt: str = "plain",
    reference: bool = True,
    max_new_tokens: int = 256,
    batch_size: int = 8,
    seed: int = 0,
    limit: int | None = None,
    out: PathLike | None = None,
    model_id: str | None = None,
    progress: bool = True,
    command: str | None = None,
) -> EvalReport:
    """Answer ``problems`` greedily with ``model`` unpatched, with each ``pack`` at each of
    ``strengths`` (in units of s_i; default the pack's own), with the seeded random control of
    each (``control="random"``; ``"none"`` leaves it out), and (``reference``) unpatched with
    the explicit step-by-step prompt; compare every row with unpatched and each pack row with its
    control (McNemar's exact test, paired bootstrap interval: ``l2v_hub.measure.stats``).

    ``pack``: a Pack, a pack folder, ``org/name[@revision]``, None (the pack a registry names for
    the model's id) or a list of them. ``problems``: ``"builtin"`` (the held-out set), a JSONL
    path or Problems; images need ``processor_or_tokenizer`` to be the model's processor.
    ``prompt``: ``plain``, ``direct`` or ``cot`` (``l2v_hub.measure.prompts``). ``out``: a folder
    where answers are kept as they come (an interrupted run given the same ``out`` resumes)
    and the report is written (:meth:`EvalReport.save`). ``command``: recorded in the report
    (the CLI passes its command line).

    Raises ``ArgumentError`` (a ``ValueError``) for bad arguments and ``ProblemsError`` for a
    malformed problems file, before any answer; pack errors as ``l2v_hub.patch`` does.
    """
    if prompt not in REGIMES:
        raise ArgumentError(f"prompt must be one of {', '.join(REGIMES)}, got {prompt!r}")
    if control not in CONTROLS:
        raise ArgumentError(f"control must be one of {', '.join(CONTROLS)}, got {control!r}")
    if max_new_tokens < 1 or batch_size < 1:
        raise ArgumentError(f"max_new_tokens and batch_size must be >= 1, got {max_new_tokens}, "
                            f"{batch_size}")
    chosen, source = select_problems(problems, limit)
    packs = _packs(pack, model, model_id)
    chosen_strengths = tuple(strengths) if strengths else None
    _check_rows(model, packs, chosen_strengths, positions)
    specs = plan_rows(packs, chosen_strengths, positions, control, prompt, reference, seed)
    if any(p.images for p in chosen) and getattr(processor_or_tokenizer, "image_processor", None) is None:
        raise ArgumentError("problems have images, but no processor with an image processor "
                            "was given: pass the model's AutoProcessor")
    started = time.perf_counter()
    folder = Path(out) if out is not None else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    store = AnswerStore(folder / "answers.jsonl" if folder is not None else None)
    # A local folder or a model built from a config has no Hub id: its path or class names it.
    name = model_hub_id(model, model_id) or str(getattr(model, "name_or_path", "") or type(model).__name__)
    context = {"model": name, "max_new_tokens": max_new_tokens}
    keys = [s.key(context) for s in specs]
    resumed = sum(store.get(k, p) is not None for k in keys for p in chosen)
    with tqdm(total=len(specs) * len(chosen), desc="eval", unit="answer", disable=not progress) as bar:
        for spec, key in zip(specs, keys, strict=True):
            _run_row(spec, key, model, processor_or_tokenizer, chosen, store, bar,
                     max_new_tokens, batch_size, model_id)
    rows = [_result(s, [store.get(k, p) for p in chosen], chosen,  # type: ignore[misc]
                    None if s.kind == "reference" else store.perplexities[k])
            for s, k in zip(specs, keys, strict=True)]
    weight = next(model.parameters())
    config = {
        "model_id": name, "model_class": type(model).__name__,
        "dtype": str(weight.dtype).removeprefix("torch."), "device": str(weight.device),
        "packs": [f"{p.name}@{p.version}" for p in packs],
        "problems": {"source": source, "count": len(chosen), "sha256": problems_sha256(chosen),
                     "with_images": sum(bool(p.images) for p in chosen)},
        "prompt": prompt, "control": control, "max_new_tokens": max_new_tokens,
        "batch_size": batch_size, "seed": seed, "resumed": resumed,
        "seconds": round(time.perf_counter() - started, 1),
        # Answering time of every answer reported, this run's and the kept ones' (None: some
        # were kept by a version that did not record it).
        "answer_seconds": (round(sum(store.seconds[(k, p.id)] for k in keys for p in chosen), 1)
                           if all((k, p.id) in store.seconds for k in keys for p in chosen) else None),
        **({"command": command} if command else {}),
        "created": datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "versions": {"l2v_hub": __version__, "torch": torch.__version__,
                     "transformers": _transformers_version(), "python": platform.python_version()},
    }
    report = EvalReport(config, _compared(rows, specs, seed))
    if folder is not None:
        report.save(folder)
    return report


def _transformers_version() -> str:
    import transformers

    return transformers.__version__
