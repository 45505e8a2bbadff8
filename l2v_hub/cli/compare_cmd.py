"""``l2v-hub compare-samples``: paired statistics of lmms-eval runs of a pack, its control and the
unpatched model, from their ``--log_samples`` files (``l2v_hub.integrations.samples``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .common import json_option

if TYPE_CHECKING:  # the module itself is imported when the command runs (scipy is slow to load)
    from ..integrations.samples import SampleRow

__all__ = ["compare_samples_cmd"]

_RUN = click.Path(exists=True, path_type=Path)


def _cells(row: SampleRow, against: str) -> str:
    c = next((c for c in row.comparisons if c.against == against), None)
    if c is None:
        return "–"
    ci = "" if c.ci_low is None else f" [{100 * c.ci_low:+.1f}, {100 * c.ci_high:+.1f}]"
    return f"{c.won}/{c.lost}, p {c.p_value:.3g}, {100 * c.difference:+.1f}{ci}"


@click.command("compare-samples")
@click.option("--unpatched", required=True, type=_RUN,
              help="Samples file (or its run's --output_path folder) of the unpatched run.")
@click.option("--pack", required=True, type=_RUN, help="... of the pack run.")
@click.option("--control", type=_RUN, help="... of the pack's control run (control=random).")
@click.option("--metric", required=True,
              help="The per-sample field that is right/wrong (bool or 0/1), e.g. exact_match; "
                   "a dotted path into a dict field, e.g. average.score.")
@click.option("--task", help="Which task's samples file, where a folder holds several.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the bootstrap (l2v-hub eval's default).")
@json_option("the rows")
def compare_samples_cmd(unpatched: Path, pack: Path, control: Path | None, metric: str,
                        task: str | None, seed: int, as_json: bool) -> None:
    """Pair the documents of lmms-eval runs by doc_id and compare them as l2v-hub eval does:
    the pack and the control against unpatched, the pack against the control; won/lost,
    McNemar's exact p, the paired bootstrap 95% interval of the accuracy difference (points),
    and the power to detect a 5-point difference."""
    from ..integrations.samples import compare_samples, samples_file, to_json

    files = [samples_file(p, task) if p is not None else None for p in (unpatched, pack, control)]
    rows = compare_samples(*files, metric=metric, seed=seed)
    if as_json:
        click.echo(json.dumps(to_json(rows), indent=1))
        return
    head = ("row", "accuracy", "vs unpatched: won/lost, p, diff [95% CI]", "vs control", "power")
    body = [(r.name, f"{100 * r.accuracy:.1f}% ({r.correct}/{r.n})", _cells(r, "unpatched"),
             _cells(r, "control"), "–" if r.power is None else f"{r.power:.2f}") for r in rows]
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
    for line in [head, *body]:
        click.echo("  ".join(f"{x:<{w}}" for x, w in zip(line, widths, strict=True)).rstrip())
