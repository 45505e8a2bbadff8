"""Make PyPI's torchvision 0.28.0 import beside the CPU torch of `.venv-vllm` (test environment only).

vLLM 0.32's Qwen2-VL, LLaVA-OneVision and Gemma 3 modules need transformers' torchvision image
processors, which use only torchvision's Python transforms. PyPI's torchvision is a CUDA build:
its C++ ops (``torchvision/_C.so``) link ``libtorch_cuda.so``, absent from torch 2.13.0+cpu, so
they do not load, which torchvision tolerates (``extension._has_ops()`` is False and every other
fake registration is skipped), except for two unconditional ones, ``torchvision::nms`` and
``torchvision::qnms``, whose ``register_fake`` raises "operator torchvision::nms does not exist" at
import. This script makes those two conditional like the others (torchvision's own
``register_meta`` test), so ``import torchvision`` works without its C++ ops; ``nms`` itself stays
unavailable. The CPU build that matches (PyTorch's own wheel index) is unreachable here.

    python scripts/torchvision_without_ops.py   # run by the Makefile's .venv-vllm recipe

Exits 1, changing nothing, when the file does not hold exactly the two lines it expects.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys
from pathlib import Path

OPS = ("nms", "qnms")
EXPECTED_VERSION = "0.28.0"


def main() -> int:
    spec = importlib.util.find_spec("torchvision")  # located, not imported: importing raises
    if spec is None or spec.origin is None:
        print("torchvision is not installed in this environment", file=sys.stderr)
        return 1
    root = Path(spec.origin).parent
    version = importlib.metadata.version("torchvision")
    if version != EXPECTED_VERSION:
        print(f"expected torchvision {EXPECTED_VERSION} in {root}, got {version}", file=sys.stderr)
        return 1
    path = root / "_meta_registrations.py"
    text = original = path.read_text()
    for op in OPS:
        line = f'@torch.library.register_fake("torchvision::{op}")\n'
        guarded = (f'@(torch.library.register_fake("torchvision::{op}") '
                   "if torchvision.extension._has_ops() else (lambda fn: fn))\n")
        if text.count(guarded) == 1:
            continue  # already made conditional by an earlier run
        if text.count(line) != 1:
            print(f"{path}: expected one line {line.strip()!r}, found {text.count(line)}",
                  file=sys.stderr)
            return 1
        text = text.replace(line, guarded)
    if text != original:
        path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
