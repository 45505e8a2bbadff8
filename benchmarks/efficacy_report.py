"""The efficacy benchmark's outputs: markdown tables (one per case) and a plot of the sweep."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

__all__ = ["BEGIN", "CASE_TITLES", "END", "markdown_tables", "write_markdown", "write_plot"]

BEGIN = "<!-- efficacy-results:begin (written by benchmarks/efficacy.py) -->"
END = "<!-- efficacy-results:end -->"
CASE_TITLES = {
    "smollm2-gemma": "SmolLM2-135M-Instruct → Gemma 3 270M (cross-model, the paper's setting)",
    "smollm2-smollm2": "SmolLM2-135M-Instruct → itself (same model)",
    "gemma-gemma": "Gemma 3 270M → itself (same model)",
    "gemma-smollm2": "Gemma 3 270M → SmolLM2-135M-Instruct (cross-model)",
}
_DESCRIBE = {
    "none": "no patch",
    "cot": "CoT pack (low-pass, Fourier, mean-diff)",
    "random": "random unit direction",
    "highpass": "high-pass instead of low-pass",
    "unfiltered": "no filter",
    "linear": "no filter, linear interpolation",
    "own": "target's own direction",
    "pca": "pca instead of mean-diff",
}


def _describe(row: dict[str, Any]) -> str:
    text = _DESCRIBE[row["direction"]]
    if row["op"] != "norm_preserving_add":
        text += f", op {row['op']}"
    if row["band"] != "middle":
        text += f", {row['band']} blocks"
    return text


def _cell(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _ppl(value: float) -> str:
    return f"{value:.1f}" if value < 1e4 else f"{value:.1e}"


def markdown_tables(report: dict[str, Any]) -> str:
    s = report["settings"]
    lines = [
        f"Command: `{report['command']}`  ",
        f"Versions: {', '.join(f'{k} {v}' for k, v in report['versions'].items())}; "
        f"{report['threads']} torch threads; runtime {report.get('runtime_s', 0):.0f} s.  ",
        f"Problems: {s['limit']}; greedy, at most {s['max_new_tokens']} new tokens; random seed "
        f"{s['seed']}; pairs `{report['pairs']['source']}` ({report['pairs']['count']}, sha256 "
        f"{report['pairs']['sha256'][:12]}…).",
        "",
    ]
    for case, rows in report["cases"].items():
        n = rows[0]["n"]
        lines += [f"### {CASE_TITLES.get(case, case)}", "",
                  "| row | what | λ | blocks | positions | accuracy | won / lost | step-by-step | tokens "
                  "| truncated | perplexity | cos own |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            blocks = "–" if r["direction"] == "none" else f"{r['layers'][0]}–{r['layers'][-1]}"
            strength = "–" if r["direction"] == "none" else f"{r['strength']:g}"
            positions = "–" if r["direction"] == "none" else r["positions"]
            lines.append(
                f"| {r['id']} | {_describe(r)} | {strength} | {blocks} | {positions} | {_cell(r['accuracy'])} "
                f"| +{r['won']} / −{r['lost']} | {_cell(r['step_by_step'])} | {r['length']:.1f} "
                f"| {_cell(r['truncated'])} | {_ppl(r['perplexity'])} | {_cell(r.get('cos_own'))} |")
        lines += ["", f"n = {n} problems per row; won / lost: problems this row gets right that the "
                  "unpatched model gets wrong, and the reverse.", ""]
    return "\n".join(lines)


def write_markdown(report: dict[str, Any], out: Path) -> None:
    """Replace the part of ``out`` between the efficacy markers (or write ``out`` whole)."""
    body = f"{BEGIN}\n{markdown_tables(report)}\n{END}"
    text = out.read_text(encoding="utf-8") if out.is_file() else ""
    if BEGIN in text and END in text:
        text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: body, text, flags=re.S)
    else:
        text = f"# Efficacy results\n\n{body}\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")


def write_plot(report: dict[str, Any], out: Path) -> None:
    """Accuracy, step-by-step share and perplexity against strength: CoT pack vs random direction,
    the unpatched model as a dashed line; one column per case."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = list(report["cases"])
    metrics = (("accuracy", "accuracy"), ("step_by_step", "step-by-step share"), ("perplexity", "perplexity"))
    fig, axes = plt.subplots(len(metrics), len(cases), figsize=(2.9 * len(cases), 6.2), squeeze=False)
    for c, case in enumerate(cases):
        rows = report["cases"][case]
        for m, (key, label) in enumerate(metrics):
            ax = axes[m][c]
            for direction, style in (("cot", "o-"), ("random", "s--")):
                pts = sorted((r["strength"], r[key]) for r in rows if r["direction"] == direction
                             and r["band"] == "middle" and r["op"] == "norm_preserving_add"
                             and r["positions"] == report["settings"]["positions"])
                if pts:
                    ax.plot(*zip(*pts, strict=True), style, ms=3, label=direction)
            ax.axhline(rows[0][key], color="grey", ls=":", label="no patch")
            # The sweeps are factors of 2 apart: a log axis spaces them evenly.
            ticks = sorted({r["strength"] for r in rows if r["direction"] == "cot"
                            and r["group"] == "strength sweep"})
            ax.set_xscale("log")
            ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
            ax.minorticks_off()
            if key == "perplexity":
                ax.set_yscale("log")
            if m == 0:
                ax.set_title(case, fontsize=8)
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
            if m == len(metrics) - 1:
                ax.set_xlabel("strength λ", fontsize=8)
            ax.tick_params(labelsize=7)
    axes[0][0].legend(fontsize=6)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=72)
    plt.close(fig)
