"""The ``l2v_hub`` model of lmms-eval (l2v_hub.integrations.lmms_eval), run by the real lmms-eval
CLI on a local task over l2v-hub's image problems with a tiny LLaVA-OneVision: unpatched, with a
pack and with its random control; answers checked against plain transformers generation and
``l2v_hub.patch``, and the paired report against ``l2v_hub.evaluate``."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from click.testing import CliRunner
from lmms_env import POSITIONS, STRENGTH, Env, make_env, results, run_lmms_eval, samples
from lmms_env import task as utils
from lmms_eval.api.instance import Instance
from transformers import AutoModelForImageTextToText, AutoProcessor

from l2v_hub import Pack, patch
from l2v_hub.cli import main
from l2v_hub.errors import ArgumentError
from l2v_hub.evaluation import evaluate
from l2v_hub.integrations.lmms_eval import L2VHubModel
from l2v_hub.measure import load_problems, random_directions

NEW_TOKENS = yaml.safe_load(
    (Path(utils.__file__).parent / "l2v_image_problems.yaml").read_text().replace("!function", "")
)["generation_kwargs"]["max_new_tokens"]
RUNS = {"unpatched": "pack=none",
        "pack": f"strength={STRENGTH:g},positions={POSITIONS}",
        "control": f"strength={STRENGTH:g},positions={POSITIONS},control=random"}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Env:
    return make_env(tmp_path_factory.mktemp("lmms"))


@pytest.fixture(scope="module")
def runs(env: Env) -> dict[str, Any]:
    """The three lmms-eval runs, through the real CLI: their stdout, results and samples."""
    out = {}
    for name, extra in RUNS.items():
        pack = "" if name == "unpatched" else f",pack={env.pack}"
        args = f"pretrained={env.model}{pack},{extra}" if name != "unpatched" else \
            f"pretrained={env.model},{extra}"
        done = run_lmms_eval(env, f"runs/{name}", args)
        out[name] = {"stdout": done.stdout, "stderr": done.stderr,
                     "results": results(env, f"runs/{name}"), "samples": samples(env, f"runs/{name}")}
    return out


def plain_answers(env: Env, steer: Pack | None = None) -> list[str]:
    """Greedy answers by transformers alone (the processor, its chat template, generate),
    steered by ``l2v_hub.patch`` when ``steer`` is given."""
    model = AutoModelForImageTextToText.from_pretrained(env.model).eval()
    processor = AutoProcessor.from_pretrained(env.model)
    handle = None if steer is None else patch(model, steer, strength=STRENGTH, positions=POSITIONS,
                                              tokenizer=processor.tokenizer)
    answers = []
    for problem in load_problems(env.problems):
        parts = [{"type": "image"}, {"type": "text", "text": utils.doc_to_text(
            {"id": problem.id, "kind": problem.kind, "question": problem.question,
             "answer": str(problem.answer), "choices": list(problem.choices),
             "image": str(problem.images[0])})}]
        text = processor.apply_chat_template([{"role": "user", "content": parts}],
                                             add_generation_prompt=True, tokenize=False)
        image = utils.doc_to_visual({"image": str(problem.images[0])})
        inputs = processor(text=[text], images=[image], return_tensors="pt",
                           add_special_tokens=False)
        with torch.inference_mode():
            out = model.generate(**inputs, do_sample=False, max_new_tokens=NEW_TOKENS)
        answers.append(processor.tokenizer.decode(out[0, inputs["input_ids"].shape[1]:],
                                                  skip_special_tokens=True).strip())
    if handle is not None:
        handle.remove()
    return answers


def responses(run: dict[str, Any]) -> list[str]:
    return [s["filtered_resps"] for s in run["samples"]]


def test_unpatched_answers_are_plain_transformers_generation(env: Env, runs: dict) -> None:
    assert responses(runs["unpatched"]) == plain_answers(env)


def test_pack_answers_are_patch_and_generate(env: Env, runs: dict) -> None:
    pack = Pack.from_pretrained(env.pack)
    assert responses(runs["pack"]) == plain_answers(env, pack)
    assert responses(runs["pack"]) != responses(runs["unpatched"])  # the pack does something


def test_the_control_run_is_the_seeded_random_control(env: Env, runs: dict) -> None:
    pack = Pack.from_pretrained(env.pack)
    control = replace(pack, directions=random_directions(pack.target.hidden_size,
                                                         pack.target.num_layers, 0))
    assert len(runs["control"]["samples"]) == len(load_problems(env.problems))
    assert responses(runs["control"]) == plain_answers(env, control)
    assert responses(runs["control"]) != responses(runs["pack"])


def test_the_cli_prints_a_table_and_logs_the_pack_and_strength(env: Env, runs: dict) -> None:
    run = runs["pack"]
    assert "|l2v_image_problems|" in run["stdout"] and "|correct|" in run["stdout"]
    config = run["results"]["config"]
    assert config["model"] == "l2v_hub"
    assert f"pack={env.pack}" in config["model_args"]
    assert f"strength={STRENGTH:g}" in config["model_args"]
    # What steered the model, resolved (name@version, s_i units), is in the run's log.
    logged = next(line for line in run["stderr"].splitlines() if line.startswith("l2v_hub: {"))
    applied = json.loads(logged.removeprefix("l2v_hub: ").rsplit(" on ", 1)[0])
    assert applied == {"pack": "tiny-pack@1.0.0", "control": None, "strength": STRENGTH,
                       "positions": POSITIONS, "layers": [2], "op": "norm_preserving_add",
                       "seed": 0}
    assert "unpatched" in next(line for line in runs["unpatched"]["stderr"].splitlines()
                               if line.startswith("l2v_hub: "))


def test_the_paired_report_agrees_with_l2v_hub_eval(env: Env, runs: dict) -> None:
    folders = {name: env.root / "runs" / name for name in RUNS}
    done = CliRunner().invoke(main, [
        "compare-samples", "--unpatched", str(folders["unpatched"]), "--pack",
        str(folders["pack"]), "--control", str(folders["control"]), "--metric", "correct",
        "--json"])
    assert done.exit_code == 0, done.output
    rows = {r["name"]: r for r in json.loads(done.output)}

    model = AutoModelForImageTextToText.from_pretrained(env.model).eval()
    processor = AutoProcessor.from_pretrained(env.model)
    report = evaluate(model, processor, env.pack, env.problems, strengths=[STRENGTH],
                      positions=POSITIONS, reference=False, max_new_tokens=NEW_TOKENS,
                      batch_size=1, progress=False)
    eval_rows = {"unpatched": report.row("unpatched"), "pack": report.row(f"pack {STRENGTH:g}"),
                 "control": report.row(f"random {STRENGTH:g}")}
    for name, theirs in eval_rows.items():
        ours = rows[name]
        assert (ours["n"], ours["correct"]) == (theirs.n, theirs.correct)
        # The same answers, so the same right/wrong per problem.
        assert [a["text"] for a in theirs.answers] == responses(runs[name])
        # eval names the control row "random 4"; the samples' rows are named by their run.
        expected = {"control" if c.against.startswith("random") else c.against: asdict(c)
                    for c in theirs.comparisons}
        got = {c["against"]: c for c in ours["comparisons"]}
        assert got.keys() == expected.keys()
        for k in got:
            assert {**got[k], "against": k} == {**expected[k], "against": k}
        assert ours["power"] == theirs.power
    # Not all alike: some answers right, and runs that differ on some problems.
    assert 0 < rows["pack"]["correct"] < rows["pack"]["n"]
    assert all(c["won"] + c["lost"] > 0 for c in rows["pack"]["comparisons"])


def test_compare_samples_table_and_a_missing_metric(env: Env, runs: dict) -> None:
    base = ["compare-samples", "--unpatched", str(env.root / "runs" / "unpatched"),
            "--pack", str(env.root / "runs" / "pack")]
    done = CliRunner().invoke(main, [*base, "--metric", "correct"])
    assert done.exit_code == 0, done.output
    assert done.output.splitlines()[0].startswith("row") and "pack" in done.output
    done = CliRunner().invoke(main, [*base, "--metric", "exact_match"])
    assert done.exit_code == 2 and "no metric 'exact_match'" in done.output


def test_bad_model_args_fail_before_loading(tmp_path: Path) -> None:
    missing = str(tmp_path / "absent")  # never loaded: the arguments fail first
    with pytest.raises(ArgumentError, match="unknown colour"):
        L2VHubModel(missing, colour="red")
    with pytest.raises(ArgumentError, match="control=random needs a pack"):
        L2VHubModel(missing, pack="none", control="random")
    with pytest.raises(ArgumentError, match="control must be one of"):
        L2VHubModel(missing, control="shuffled")
    with pytest.raises(ArgumentError, match="strength must be a number"):
        L2VHubModel(missing, strength="strong")


def test_loglikelihood_is_the_steered_log_probability_of_the_continuation(env: Env) -> None:
    """Context and continuation in two passes give the log-probability one full forward gives
    (positions=all: every token steered either way), patched as l2v_hub.patch patches."""
    (problem, *_) = load_problems(env.problems)
    doc = {"id": problem.id, "kind": problem.kind, "question": problem.question,
           "answer": str(problem.answer), "choices": [], "image": str(problem.images[0])}
    context, continuation = utils.doc_to_text(doc), " 42"
    for pack in ("none", str(env.pack)):
        lm = L2VHubModel(str(env.model), pack=pack, strength=STRENGTH, positions=POSITIONS)
        lm.task_dict = {"t": {"test": [doc]}}
        request = Instance("loglikelihood", (context, continuation, utils.doc_to_visual, 0, "t",
                                             "test"), 0, {"task": "t", "doc_id": 0, "repeats": 1})
        ((logp, greedy),) = lm.loglikelihood([request])

        model = AutoModelForImageTextToText.from_pretrained(env.model).eval()
        processor = AutoProcessor.from_pretrained(env.model)
        if pack != "none":
            patch(model, pack, strength=STRENGTH, positions=POSITIONS, tokenizer=processor.tokenizer)
        parts = [{"type": "image"}, {"type": "text", "text": context}]
        prompt = processor.apply_chat_template([{"role": "user", "content": parts}],
                                               add_generation_prompt=True, tokenize=False)
        image = utils.doc_to_visual(doc)
        head = processor(text=[prompt], images=[image], return_tensors="pt", add_special_tokens=False)
        whole = processor(text=[prompt + continuation], images=[image], return_tensors="pt",
                          add_special_tokens=False)
        width = head["input_ids"].shape[1]
        with torch.inference_mode():
            logits = model(**whole).logits[0, width - 1:-1].float()
        target = whole["input_ids"][0, width:]
        expected = torch.log_softmax(logits, -1).gather(1, target[:, None]).sum()
        assert logp == pytest.approx(float(expected), abs=1e-4)
        assert greedy == bool(torch.equal(logits.argmax(-1), target))
        assert logp < 0
