"""Evaluation: what a pack does to a model, measured against unpatched, a random-direction control
and the explicit chain-of-thought prompt (``l2v_hub.evaluate``, ``l2v-hub eval``; docs/eval.md).
Uses the loader and ``l2v_hub.measure``; nothing here is imported by the loader."""

try:
    import scipy  # noqa: F401  (the paired statistics)
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError("l2v_hub.evaluate needs scipy: pip install 'l2v-hub[eval]'") from exc

from .report import EvalReport, RowResult
from .rows import RowSpec
from .runner import evaluate, select_problems

__all__ = ["EvalReport", "RowResult", "RowSpec", "evaluate", "select_problems"]
