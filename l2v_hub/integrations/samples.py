"""Paired statistics of lmms-eval runs: the per-sample files ``--log_samples`` writes for an
unpatched run, a pack run and its control, paired by ``doc_id`` and compared as ``l2v-hub eval``
compares its rows (``l2v_hub.measure.stats``: McNemar's exact p, the paired bootstrap interval,
power; docs/eval.md). Reads JSON only: lmms-eval need not be installed.

A samples file (``OUT/<model>/<date>_samples_<task>.jsonl``) has one JSON object per document,
with ``doc_id``, ``doc_hash`` and the task's per-sample metrics; ``metric`` names the one that
says right or wrong (a dotted path into a dict value, e.g. ``average.score``), as a bool or 0/1.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import ArgumentError
from ..measure.stats import Paired, compare, power_of

__all__ = ["SampleRow", "compare_samples", "read_samples", "samples_file", "to_json"]


@dataclass(frozen=True)
class SampleRow:
    """One run's row: ``n`` documents, ``correct`` of them right; ``comparisons`` against
    ``unpatched`` (and, for the pack, its ``control``); ``power``: of the exact test against the
    control (else unpatched) to detect a 5-point difference, as ``l2v-hub eval`` reports it."""

    name: str
    file: str
    n: int
    correct: int
    accuracy: float
    comparisons: list[Paired]
    power: float | None


def samples_file(path: str | Path, task: str | None = None) -> Path:
    """``path`` itself, or the one ``*_samples_<task>.jsonl`` under the folder ``path`` (any task
    when ``task`` is None). Raises ``ArgumentError`` for none or several."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise ArgumentError(f"{path}: no such samples file or folder")
    found = sorted(path.rglob(f"*_samples_{task or '*'}.jsonl"))
    if len(found) != 1:
        names = ", ".join(str(f) for f in found) or "none"
        raise ArgumentError(f"{path}: expected one lmms-eval samples file "
                            f"(*_samples_{task or '<task>'}.jsonl, written by --log_samples), "
                            f"found {names}; pass the file or --task")
    return found[0]


def _value(sample: dict[str, Any], metric: str, where: str) -> bool:
    value: Any = sample
    for key in metric.split("."):
        if not isinstance(value, dict) or key not in value:
            keys = ", ".join(k for k in sample if k not in ("doc_id", "doc_hash", "target"))
            raise ArgumentError(f"{where}: no metric {metric!r}; its fields: {keys}")
        value = value[key]
    if isinstance(value, bool) or value in (0, 1):
        return bool(value)
    raise ArgumentError(f"{where}: metric {metric!r} is {value!r}, expected true/false or 0/1")


def read_samples(path: str | Path, metric: str) -> dict[int, tuple[str | None, bool]]:
    """``doc_id -> (doc_hash, right)`` of one samples file. Raises ``ArgumentError`` for a
    malformed line, a missing metric or a document given twice."""
    out: dict[int, tuple[str | None, bool]] = {}
    with Path(path).open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                sample = json.loads(line)
                doc = int(sample["doc_id"])
            except (ValueError, KeyError, TypeError):
                raise ArgumentError(f"{where}: not an lmms-eval sample (a JSON object with "
                                    "doc_id)") from None
            if doc in out:
                raise ArgumentError(f"{where}: doc_id {doc} is given twice")
            out[doc] = (sample.get("doc_hash"), _value(sample, metric, where))
    if not out:
        raise ArgumentError(f"{path}: no samples")
    return out


def compare_samples(unpatched: str | Path, pack: str | Path, control: str | Path | None = None,
                    *, metric: str, seed: int = 0) -> list[SampleRow]:
    """The rows ``unpatched``, ``pack`` and (given) ``control``: each against unpatched, the
    pack also against its control, on the documents all runs share, in ``doc_id`` order.

    Raises ``ArgumentError`` when the runs share no document or a shared ``doc_id`` names
    different documents (different ``doc_hash``)."""
    files = {"unpatched": unpatched, "pack": pack, "control": control}
    runs = {name: read_samples(f, metric) for name, f in files.items() if f is not None}
    shared = sorted(set.intersection(*(set(r) for r in runs.values())))
    if not shared:
        raise ArgumentError("the runs share no doc_id: were they run on the same task?")
    for doc in shared:
        hashes = {r[doc][0] for r in runs.values()}
        if len(hashes) > 1:
            raise ArgumentError(f"doc_id {doc} is a different document in different runs "
                                "(doc_hash differs): were they run on the same task and data?")
    right = {name: [r[doc][1] for doc in shared] for name, r in runs.items()}
    rows = []
    for name in runs:
        against = [] if name == "unpatched" else [
            compare(right[name], right["unpatched"], "unpatched", seed=seed)]
        if name == "pack" and "control" in runs:
            against.append(compare(right["pack"], right["control"], "control", seed=seed))
        power = round(power_of(against[-1], len(shared)), 3) if name == "pack" else None
        rows.append(SampleRow(name, str(files[name]), len(shared), sum(right[name]),
                              sum(right[name]) / len(shared), against, power))
    return rows


def to_json(rows: list[SampleRow]) -> list[dict[str, Any]]:
    """The rows as JSON-ready dicts."""
    return [asdict(r) for r in rows]
