"""The accuracy guard of a calibrated pack at other token budgets: is a refusal the pack's harm, or
its longer answers meeting the budget? (docs/reasoning.md, section 4.)

    .venv/bin/python benchmarks/guard_budget.py PACK MODEL_FOLDER --model-id ID --tokens 400,512
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

import torch

from l2v_hub import Pack
from l2v_hub.builder import load_model
from l2v_hub.criteria import accuracy_guard
from l2v_hub.measure import builtin_problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("pack")
    parser.add_argument("model")
    parser.add_argument("--model-id", required=True)
    parser.add_argument("--tokens", default="400,512")
    parser.add_argument("--problems", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(2)
    pack = Pack.from_pretrained(args.pack)
    guard = pack.calibration.behaviour.guard  # the strength and policy the calibration checked
    model, tok = load_model(args.model)
    problems = builtin_problems("calibration", args.problems)
    for tokens in (int(t) for t in args.tokens.split(",")):
        g = accuracy_guard(model, tok, pack, guard.strength, guard.positions, problems,
                           tokens=tokens, margin=guard.margin, batch_size=args.problems,
                           model_id=args.model_id)
        print(json.dumps(asdict(g)), flush=True)


if __name__ == "__main__":
    main()
