"""What an evaluation found: a row per model state with its measures, paired comparisons and every
answer; written as a terminal table, JSON, a markdown report and a plot (docs/eval.md)."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..measure.stats import Paired

__all__ = ["EvalReport", "RowResult"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RowResult:
    """One row's measures. Shares are in [0, 1]; ``answer_tokens`` is a mean count;
    ``perplexity`` is the neutral-text perplexity with the row's steering on (None for the
    reference row: the unpatched model). ``comparisons``: against ``unpatched`` and, for a pack
    row, against its control. ``power``: of the exact McNemar test against the control (else
    against unpatched) to detect a 5-point accuracy difference, at the observed discordant share
    (at least 5%) and alpha 0.05."""

    name: str
    kind: str
    regime: str
    pack: str | None
    strength: float | None
    positions: str | None
    layers: list[int] | None
    op: str | None
    n: int
    correct: int
    accuracy: float
    step_by_step: float
    answer_tokens: float
    truncated: float
    non_ascii: float
    perplexity: float | None
    comparisons: list[Paired] = field(default_factory=list)
    power: float | None = None
    answers: list[dict[str, Any]] = field(default_factory=list)

    def against(self, name: str) -> Paired | None:
        """The comparison with the row ``name``, if made."""
        return next((c for c in self.comparisons if c.against == name), None)


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def _signed(x: float) -> str:
    return f"{100 * x:+.1f}"


def _p(p: float) -> str:
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


@dataclass
class EvalReport:
    """Every row of one evaluation; ``config`` records the model, problems, regime, budget,
    seed, versions and runtime."""

    config: dict[str, Any]
    rows: list[RowResult]

    def row(self, name: str) -> RowResult:
        """The row called ``name`` (KeyError if none)."""
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(f"no row {name!r}; rows: {', '.join(r.name for r in self.rows)}")

    def to_json(self, answers: bool = True) -> dict[str, Any]:
        """JSON-ready data; ``answers=False`` leaves every answer's text out."""
        rows = []
        for r in self.rows:
            d = asdict(r)
            if not answers:
                d.pop("answers")
            rows.append(d)
        return {"config": self.config, "rows": rows}

    def _cells(self, r: RowResult, other: str | None) -> list[str]:
        c = r.against(other) if other else None
        if c is None:
            return ["–", "–", "–"]
        ci = "" if c.ci_low is None or c.ci_high is None else \
            f" [{_signed(c.ci_low)}, {_signed(c.ci_high)}]"
        return [f"{c.won}/{c.lost}", _p(c.p_value), _signed(c.difference) + ci]

    def _lines(self) -> tuple[list[str], list[list[str]]]:
        head = ["row", "accuracy", "won/lost vs unpatched", "p", "diff [95% CI]",
                "won/lost vs control", "p ", "diff [95% CI] ", "step-by-step", "tokens",
                "truncated", "perplexity"]
        body = []
        for r in self.rows:
            control = next((c.against for c in r.comparisons if c.against != "unpatched"), None)
            body.append([r.name, f"{_pct(r.accuracy)}% ({r.correct}/{r.n})",
                         *self._cells(r, "unpatched"), *self._cells(r, control),
                         _pct(r.step_by_step) + "%", f"{r.answer_tokens:.1f}",
                         _pct(r.truncated) + "%",
                         "–" if r.perplexity is None else f"{r.perplexity:.4g}"])
        return head, body

    def table(self) -> str:
        """The rows as a fixed-width table (differences in accuracy points)."""
        head, body = self._lines()
        widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths)
        return "\n".join(fmt.format(*x) for x in [head, *body])

    def markdown(self) -> str:
        """A markdown report: what was run, the table, and the power of each comparison."""
        c = self.config
        head, body = self._lines()
        lines = [f"# Evaluation of {c['model_id']}", "",
                 f"- problems: {c['problems']['source']} ({c['problems']['count']}, sha256 "
                 f"{c['problems']['sha256'][:12]}), prompt regime `{c['prompt']}`, greedy, "
                 f"{c['max_new_tokens']} new tokens at most, batch {c['batch_size']}",
                 f"- model: {c['model_class']}, {c['dtype']} on {c['device']}; control seed {c['seed']}",
                 "- versions: " + ", ".join(f"{k} {v}" for k, v in c["versions"].items()),
                 f"- runtime: {c['seconds']:.0f} s" + (f" ({c['resumed']} answers resumed)"
                                                       if c.get("resumed") else "")
                 + (f"; answering, all rows: {c['answer_seconds']:.0f} s"
                    if c.get("answer_seconds") is not None else ""), "",
                 "Differences are in accuracy points; p is McNemar's exact test; the interval is "
                 "a paired bootstrap 95% interval.", "",
                 "| " + " | ".join(h.strip() for h in head) + " |",
                 "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(x) + " |" for x in body]
        powered = [r for r in self.rows if r.power is not None]
        if powered:
            lines += ["", "Power to detect a 5-point accuracy difference (exact McNemar, alpha "
                      "0.05, at the observed discordant share):", ""]
            lines += [f"- {r.name}: {r.power:.2f} against "
                      f"{next((x.against for x in r.comparisons if x.against != 'unpatched'), 'unpatched')}"
                      for r in powered]
        return "\n".join(lines) + "\n"

    def plot(self, path: Path) -> bool:
        """Accuracy (Wilson 95% interval) and step-by-step share per row, as a PNG; False when
        matplotlib is not installed (the ``plot`` extra)."""
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            log.warning("matplotlib is not installed (pip install 'l2v-hub[plot]'): no plot")
            return False
        from scipy.stats import binomtest

        names = [r.name for r in self.rows]
        acc = [r.accuracy for r in self.rows]
        cis = [binomtest(r.correct, r.n).proportion_ci(method="wilson") if r.n else None
               for r in self.rows]
        err = [[a - (ci.low if ci else a) for a, ci in zip(acc, cis, strict=True)],
               [(ci.high if ci else a) - a for a, ci in zip(acc, cis, strict=True)]]
        fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(names)), 4))
        xs = range(len(names))
        ax.bar([x - 0.2 for x in xs], acc, 0.4, yerr=err, capsize=3, label="accuracy")
        ax.bar([x + 0.2 for x in xs], [r.step_by_step for r in self.rows], 0.4,
               label="step-by-step share")
        ax.set_xticks(list(xs), names, rotation=20, ha="right")
        ax.set_ylim(0, 1)
        ax.set_title(f"{self.config['model_id']}: {self.config['problems']['source']}, "
                     f"prompt {self.config['prompt']}", fontsize=9)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return True

    def save(self, out: str | Path) -> Path:
        """``report.json`` (every answer), ``report.md`` and ``report.png`` in ``out``."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.json").write_text(json.dumps(self.to_json(), indent=1) + "\n", encoding="utf-8")
        (out / "report.md").write_text(self.markdown(), encoding="utf-8")
        self.plot(out / "report.png")
        return out
