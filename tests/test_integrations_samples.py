"""l2v_hub.integrations.samples and `l2v-hub compare-samples`: lmms-eval samples files paired by
doc_id and compared with l2v_hub.measure.stats (no lmms-eval needed: the files are JSON)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from scipy import stats

from l2v_hub.cli import main
from l2v_hub.errors import ArgumentError
from l2v_hub.integrations.samples import compare_samples, read_samples, samples_file
from l2v_hub.measure.stats import compare, power_of


def write(path: Path, right: list[bool], *, metric: str = "correct", order: list[int] | None = None,
          hashes: list[str] | None = None) -> Path:
    """A samples file as lmms-eval writes it: one JSON object per document, in any order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [{"doc_id": i, "doc_hash": (hashes or [f"h{j}" for j in range(len(right))])[i],
             "target": "1", "filtered_resps": "x", metric: r} for i, r in enumerate(right)]
    rows = [rows[i] for i in (order or range(len(rows)))]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


UNPATCHED = [False] * 6 + [True] * 4 + [False] * 10
PACK = [True] * 6 + [True] * 4 + [False] * 9 + [True]
CONTROL = [True] * 2 + [False] * 4 + [True] * 4 + [False] * 10


def test_rows_pair_by_doc_id_and_match_the_stats_eval_uses(tmp_path: Path) -> None:
    files = [write(tmp_path / "u.jsonl", UNPATCHED),
             # the pack's file in another order: pairing is by doc_id, not by line
             write(tmp_path / "p.jsonl", PACK, order=list(range(19, -1, -1))),
             write(tmp_path / "c.jsonl", CONTROL)]
    unpatched, pack, control = compare_samples(*files, metric="correct")
    assert (unpatched.n, unpatched.correct, unpatched.comparisons) == (20, 4, [])
    vs_unpatched, vs_control = pack.comparisons
    assert (vs_unpatched.won, vs_unpatched.lost, pack.correct) == (7, 0, 11)
    assert vs_unpatched.p_value == pytest.approx(stats.binomtest(7, 7, 0.5).pvalue)
    assert vs_unpatched == compare(PACK, UNPATCHED, "unpatched")
    assert vs_control == compare(PACK, CONTROL, "control")
    assert (vs_control.won, vs_control.lost) == (5, 0)
    assert pack.power == round(power_of(vs_control, 20), 3) and 0 < pack.power < 1
    assert control.comparisons == [compare(CONTROL, UNPATCHED, "unpatched")]
    assert control.power is None


def test_the_cli_prints_a_table_and_json(tmp_path: Path) -> None:
    write(tmp_path / "runs/u/model/2026_samples_t.jsonl", UNPATCHED)
    write(tmp_path / "runs/p/model/2026_samples_t.jsonl", PACK)
    args = ["compare-samples", "--unpatched", str(tmp_path / "runs/u"), "--pack",
            str(tmp_path / "runs/p"), "--metric", "correct"]
    done = CliRunner().invoke(main, args)
    assert done.exit_code == 0, done.output
    head, _, pack = done.output.splitlines()
    assert head.split()[:2] == ["row", "accuracy"]
    assert pack.startswith("pack") and "55.0% (11/20)" in pack and "7/0" in pack
    done = CliRunner().invoke(main, [*args, "--json"])
    rows = json.loads(done.output)
    assert [r["name"] for r in rows] == ["unpatched", "pack"]
    assert rows[1]["comparisons"][0]["won"] == 7


def test_dotted_metrics_and_numbers(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps({"doc_id": 0, "average": {"score": 1.0}}) + "\n"
                    + json.dumps({"doc_id": 1, "average": {"score": 0}}) + "\n")
    assert read_samples(path, "average.score") == {0: (None, True), 1: (None, False)}


@pytest.mark.parametrize(("line", "metric", "message"), [
    ({"doc_id": 0, "correct": 0.5}, "correct", "is 0.5, expected true/false or 0/1"),
    ({"doc_id": 0, "correct": True}, "exact_match", "no metric 'exact_match'; its fields: correct"),
    ({"correct": True}, "correct", "not an lmms-eval sample"),
])
def test_bad_samples_are_named(tmp_path: Path, line: dict, metric: str, message: str) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps(line) + "\n")
    with pytest.raises(ArgumentError, match=message):
        read_samples(path, metric)


def test_runs_of_different_documents_are_refused(tmp_path: Path) -> None:
    u = write(tmp_path / "u.jsonl", [True, False])
    with pytest.raises(ArgumentError, match="doc_id 1 is a different document"):
        compare_samples(u, write(tmp_path / "p.jsonl", [True, True], hashes=["h0", "other"]),
                        metric="correct")
    twice = tmp_path / "twice.jsonl"
    twice.write_text('{"doc_id": 0, "correct": true}\n{"doc_id": 0, "correct": false}\n')
    with pytest.raises(ArgumentError, match="doc_id 0 is given twice"):
        read_samples(twice, "correct")


def test_a_folder_must_hold_one_samples_file(tmp_path: Path) -> None:
    write(tmp_path / "a/m/x_samples_t1.jsonl", [True])
    write(tmp_path / "a/m/x_samples_t2.jsonl", [True])
    with pytest.raises(ArgumentError, match="expected one lmms-eval samples file"):
        samples_file(tmp_path / "a")
    assert samples_file(tmp_path / "a", "t2").name == "x_samples_t2.jsonl"
    with pytest.raises(ArgumentError, match="no such samples file"):
        samples_file(tmp_path / "missing")


def test_the_package_and_its_cli_never_import_lmms_eval() -> None:
    import subprocess
    import sys

    code = ("import sys, l2v_hub, l2v_hub.cli, l2v_hub.integrations, l2v_hub.integrations.samples;"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('lmms_eval', 'torchvision')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
