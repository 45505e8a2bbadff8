"""Put the reports of the `l2v-hub eval` runs of benchmarks/efficacy.sh into docs/efficacy.md.

    .venv/bin/python benchmarks/efficacy_report.py [--runs .cache/efficacy] [--doc docs/efficacy.md]

Each run's ``report.md`` (written by ``l2v-hub eval --out RUN``) replaces the text between
``<!-- eval:RUN:begin -->`` and ``<!-- eval:RUN:end -->``, headed by the command that made it;
everything else in the doc (what the numbers show) is written by hand. ``report.json`` of each run
is copied to ``docs/efficacy/RUN.json`` (every answer).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def section(run: Path) -> str:
    """The run's report, its title dropped, under the command that made it."""
    report = json.loads((run / "report.json").read_text(encoding="utf-8"))
    body = (run / "report.md").read_text(encoding="utf-8").split("\n", 1)[1].strip()
    command = report["config"].get("command", "(command not recorded)")
    return f"Command: `{command}`\n\n{body}\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=Path, default=ROOT / ".cache" / "efficacy")
    p.add_argument("--doc", type=Path, default=ROOT / "docs" / "efficacy.md")
    args = p.parse_args(argv)
    doc = args.doc.read_text(encoding="utf-8")
    copies = args.doc.parent / "efficacy"
    copies.mkdir(exist_ok=True)
    for name in re.findall(r"<!-- eval:([\w.-]+):begin -->", doc):
        run = args.runs / name
        if not (run / "report.json").is_file():
            print(f"{name}: no report in {run}, left as it is")
            continue
        begin, end = f"<!-- eval:{name}:begin -->", f"<!-- eval:{name}:end -->"
        head, _, rest = doc.partition(begin)
        _, _, tail = rest.partition(end)
        doc = f"{head}{begin}\n{section(run)}{end}{tail}"
        shutil.copyfile(run / "report.json", copies / f"{name}.json")
        print(f"{name}: updated")
    args.doc.write_text(doc, encoding="utf-8")


if __name__ == "__main__":
    main()
