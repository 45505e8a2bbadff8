"""The stages of ``make demo``: source LLM -> two packs -> calibrated on each target -> local store ->
registry -> fresh process -> ``l2v-hub eval`` on the VLM target.

Each stage prints what it does and is timed; ``run`` returns the timings and the answers so the
tests can run the same stages on tiny models.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..builder import PairSet, TargetSpec, build_packs
from ..hub import publish, register, suggest_repo_name
from ..hub.registry import REGISTRY_ENV
from ..hub.source import STORE_ENV
from ..hub.store import Store
from ..hub.tags import forget_source

__all__ = ["DemoPlan", "DemoResult", "real_plan", "run"]

DEMO_ORG = "l2v-hub-demo"


@dataclass(frozen=True)
class DemoPlan:
    """What the demo runs on. ``target_loaders`` are ``module:function`` names that the fresh
    process calls with ``cache`` to get each target ``(model, tokenizer)``, in ``targets``' order."""

    out: Path
    cache: Path
    load_source: Callable[[Path], tuple[Any, Any]]
    targets: tuple[TargetSpec, ...]
    target_loaders: tuple[str, ...]
    pairs: str | PairSet = "builtin"
    max_new_tokens: int = 48
    python_path: tuple[str, ...] = ()
    # Calibration on each target: problems per row and their token budget (kept small: the demo
    # shows the path; docs/calibration.md has the full-size runs).
    calibration_problems: int = 6
    calibration_tokens: int = 24
    # The demo calibrates by the neutral-text perplexity budget (l2v-hub calibrate's default is
    # the behaviour criterion, docs/reasoning.md; on the demo's base Gemma 3 270M it would fall
    # back to the full perplexity sweep, past the demo's 10 minutes). That sweep is most of
    # calibration's time: the demo sweeps one policy from 1/64 (the full one: two from 1/128).
    calibration_positions: tuple[str, ...] = ("generated",)
    calibration_grid_start: float = 1 / 64
    # The last stage: `l2v-hub eval` on a VLM saved as a folder with its processor (a
    # ``module:function`` called with ``cache``, giving the folder), registered under
    # ``eval_target_id``: unpatched / pack / random control on generated image problems and
    # builtin held-out text problems, in the direct regime. None: no eval stage.
    eval_target: str | None = None
    eval_target_id: str = ""
    eval_images: int = 6
    eval_texts: int = 6
    eval_tokens: int = 24
    eval_image_size: int = 128


@dataclass
class DemoResult:
    """Where the packs went, the per-stage seconds and each target's answers."""

    store: Path
    registry: Path
    repos: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    answers: list[dict[str, Any]] = field(default_factory=list)
    eval: dict[str, Any] = field(default_factory=dict)


def real_plan(out: Path = Path(".cache/demo"), cache: Path = Path(".cache/l2v_hub")) -> DemoPlan:
    """The real thing: SmolLM2-135M-Instruct -> Gemma 3 270M and the Gemma 3 VLM on it."""
    from ..builder import builtin_pairs
    from .models import GEMMA_ID, GEMMA_VLM_ID, load_smollm2

    # Every 9th builtin pair (32, all 12 templates): the 10-minute budget on 2 cores; `l2v-hub
    # build` uses all 288.
    pairs = builtin_pairs()
    return DemoPlan(
        out=out,
        cache=cache,
        load_source=load_smollm2,
        targets=(TargetSpec(GEMMA_ID, 640, 18, "gemma3_text"), TargetSpec(GEMMA_VLM_ID, 640, 18, "gemma3")),
        target_loaders=("l2v_hub.demo.models:load_gemma", "l2v_hub.demo.models:load_gemma_vlm"),
        pairs=PairSet("builtin-every-9th", pairs.style, pairs.pairs[::9]),
        eval_target="l2v_hub.demo.vlm:gemma_vlm",
        eval_target_id=GEMMA_VLM_ID,
    )


@contextmanager
def _stage(result: DemoResult, number: int, title: str) -> Iterator[None]:
    print(f"\n[{number}] {title}", flush=True)
    start = time.perf_counter()
    yield
    result.seconds[title] = time.perf_counter() - start
    print(f"    ({result.seconds[title]:.1f} s)", flush=True)


def _side_by_side(left: str, right: str, width: int = 48) -> str:
    a = textwrap.wrap(left, width) or [""]
    b = textwrap.wrap(right, width) or [""]
    a += [""] * (len(b) - len(a))
    b += [""] * (len(a) - len(b))
    return "\n".join(f"      {x:<{width}} | {y}" for x, y in zip(a, b, strict=True))


def _verdict(answer: dict[str, Any]) -> str:
    final = "none" if answer["final"] is None else f"{answer['final']:g}"
    mark = "correct" if answer["correct"] else "wrong"
    return f"{answer['tokens']} tokens, {answer['lines']} lines, final {final}: {mark}"


def print_answers(answers: list[dict[str, Any]]) -> None:
    """Every target's answers, unpatched beside patched, with the measured differences."""
    for target in answers:
        print(f"\n  {target['model_id']} ({target['model_class']}), pack {target['pack']}")
        totals = {"plain": [0, 0, 0], "patched": [0, 0, 0]}
        for i, row in enumerate(target["rows"], 1):
            q = row["question"]
            print(f"\n    Q{i}. {q['text']}  (known answer: {q['answer']:g})")
            print(_side_by_side("WITHOUT the pack", "WITH l2v_hub.patch(model)"))
            print(_side_by_side(" ".join(row["plain"]["text"].split()), " ".join(row["patched"]["text"].split())))
            print(_side_by_side(_verdict(row["plain"]), _verdict(row["patched"])))
            print(f"      largest change of a next-token logit over the first answer tokens: {row['max_logit_change']:.4f}")
            for side in totals:
                a = row[side]
                totals[side] = [totals[side][0] + a["tokens"], totals[side][1] + a["lines"],
                                totals[side][2] + int(a["correct"])]
        n = len(target["rows"])
        for side, (tokens, lines, right) in totals.items():
            print(f"    {side:>8}: mean {tokens / n:.1f} tokens, {lines / n:.1f} lines, {right}/{n} correct")


def _fresh_env(plan: DemoPlan, result: DemoResult) -> dict[str, str]:
    env = {**os.environ, STORE_ENV: str(result.store.resolve()), REGISTRY_ENV: str(result.registry.resolve()),
           "HF_HUB_OFFLINE": "1"}
    if plan.python_path:
        env["PYTHONPATH"] = os.pathsep.join([*plan.python_path, env.get("PYTHONPATH", "")])
    return env


def _answer_in_fresh_process(plan: DemoPlan, result: DemoResult) -> list[dict[str, Any]]:
    out = plan.out / "answers.json"
    env = _fresh_env(plan, result)
    print(f"    {STORE_ENV}={env[STORE_ENV]}\n    {REGISTRY_ENV}={env[REGISTRY_ENV]}")
    subprocess.run(
        [sys.executable, "-m", "l2v_hub.demo.answer", str(out), str(plan.cache), str(plan.max_new_tokens),
         *plan.target_loaders],
        env=env, check=True,
    )
    return json.loads(out.read_text())


def _calibrate(plan: DemoPlan, pack: Any, loader: str) -> Any:
    from ..calibrate import DEFAULT_GRID, calibrate
    from ..measure import builtin_problems
    from .answer import load_target

    model, tokenizer = load_target(loader, plan.cache)
    calibrated = calibrate(pack, model, tokenizer, criterion="perplexity", version=pack.version,
                           progress=False,
                           problems=builtin_problems("calibration", plan.calibration_problems),
                           problems_source=f"builtin-calibration[:{plan.calibration_problems}]",
                           max_new_tokens=plan.calibration_tokens,
                           positions=plan.calibration_positions,
                           grid=tuple(g for g in DEFAULT_GRID if g >= 0.999 * plan.calibration_grid_start))
    c = calibrated.calibration
    print(f"    {pack.target.model_id}: strength {c.strength:g}, positions {c.positions}; perplexity "
          f"{c.baseline.perplexity:.4g} unpatched, {c.pack.perplexity:.4g} pack, "
          f"{c.control.perplexity:.4g} random control")
    return calibrated


def _eval_problems(plan: DemoPlan, folder: Path) -> Path:
    """Generated image problems and the first builtin held-out text problems, in one JSONL."""
    from ..measure import builtin_problems
    from .image_problems import make_image_problems

    path = make_image_problems(folder, count=plan.eval_images, seed=0, size=plan.eval_image_size)
    text = [{"id": p.id, "kind": p.kind, "question": p.question, "answer": p.answer,
             **({"choices": list(p.choices)} if p.choices else {})}
            for p in builtin_problems("heldout", plan.eval_texts)]
    with path.open("a", encoding="utf-8") as out:
        out.write("".join(json.dumps(row) + "\n" for row in text))
    return path


def _eval(plan: DemoPlan, result: DemoResult) -> dict[str, Any]:
    """``l2v-hub eval`` in a fresh process, the pack found by the model id through the registry."""
    module, _, function = (plan.eval_target or "").partition(":")
    folder = getattr(importlib.import_module(module), function)(plan.cache)
    problems = _eval_problems(plan, plan.out / "eval-problems")
    out = plan.out / "eval"
    shutil.rmtree(out, ignore_errors=True)
    args = ["eval", "--model", str(folder), "--model-id", plan.eval_target_id, "--pack", "auto",
            "--problems", str(problems), "--prompt", "direct", "--no-reference",
            "--max-new-tokens", str(plan.eval_tokens), "--batch-size", "6", "--out", str(out),
            "--quiet"]
    print("    $ l2v-hub " + " ".join(args), flush=True)
    done = subprocess.run([sys.executable, "-m", "l2v_hub", *args], env=_fresh_env(plan, result),
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"l2v-hub eval failed ({done.returncode}): {done.stderr[-2000:]}")
    print(textwrap.indent(done.stdout.rstrip(), "    "), flush=True)
    return json.loads((out / "report.json").read_text(encoding="utf-8"))


def run(plan: DemoPlan) -> DemoResult:
    """Every stage in order; prints progress, the answers side by side and the timings."""
    from ..cli import main as cli

    start = time.perf_counter()
    result = DemoResult(store=plan.out / "store", registry=plan.out / "registry.json")
    # A demo run starts clean: a store's versions are immutable, and a rebuilt pack differs
    # (its creation time) from the one a previous run published under the same version.
    shutil.rmtree(result.store, ignore_errors=True)
    forget_source(Store(result.store).where)  # the tags this demo pulled from its old store
    result.registry.unlink(missing_ok=True)
    plan.out.mkdir(parents=True, exist_ok=True)
    with _stage(result, 1, "load the source LLM"):
        model, tokenizer = plan.load_source(plan.cache)
        config = model.config
        print(f"    {model.name_or_path}: {config.model_type}, hidden {config.hidden_size}, "
              f"{config.num_hidden_layers} blocks")
    with _stage(result, 2, "build the CoT packs (one extraction, encoded for each target)"):
        packs = build_packs(model, tokenizer, plan.targets, plan.pairs, version="0.1.0")
        for p in packs:
            print(f"    {p.name}: {p.source.hidden_size} -> {p.target.hidden_size} wide, "
                  f"{p.source.num_layers} -> {p.target.num_layers} blocks, {p.method.pairs.count} pairs, "
                  f"keep {p.method.lowpass_keep} bins, layers {list(p.defaults.layers)}")
    del model
    with _stage(result, 3, "calibrate each pack on its target (s_i, strength within +10% perplexity, "
                           "random control)"):
        packs = [_calibrate(plan, p, spec) for p, spec in zip(packs, plan.target_loaders, strict=True)]
    with _stage(result, 4, f"publish both to the local store {result.store}"):
        for p in packs:
            repo = f"{DEMO_ORG}/{suggest_repo_name(p)}"
            release = publish(p, repo, store=result.store)
            result.repos.append(repo)
            print(f"    published {release}")
    with _stage(result, 5, f"register them in a user registry {result.registry}, then list it"):
        for repo in result.repos:
            register(result.registry, repo, store=result.store)
        print(f"    $ l2v-hub list --registry {result.registry}")
        cli(["list", "--registry", str(result.registry)], standalone_mode=False)
    with _stage(result, 6, "a fresh Python process: load each target, l2v_hub.patch(model), answer"):
        result.answers = _answer_in_fresh_process(plan, result)
    print_answers(result.answers)
    if plan.eval_target is not None:
        with _stage(result, 7, f"measure the pack on {plan.eval_target_id}: l2v-hub eval, unpatched / "
                               "pack / random control, image and text problems"):
            result.eval = _eval(plan, result)
    total = time.perf_counter() - start
    print("\nwhere the packs are:")
    for repo in result.repos:
        print(f"  {repo}: {result.store / repo}")
    print("publish them to the Hugging Face Hub (HF_TOKEN set, or `hf auth login`):")
    for repo in result.repos:
        version = sorted((result.store / repo).iterdir())[-1]
        print(f"  l2v-hub publish {version} --repo YOUR-ORG/{repo.split('/')[1]}")
    print("\ntimings:")
    for title, seconds in result.seconds.items():
        print(f"  {seconds:7.1f} s  {title}")
    print(f"  {total:7.1f} s  total")
    result.seconds["total"] = total
    return result
