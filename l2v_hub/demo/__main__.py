"""``make demo`` (``python -m l2v_hub.demo [OUT_DIR]``): the whole mission on two real models.

SmolLM2-135M-Instruct is the source; packs are built for Gemma 3 270M and for a Gemma 3 VLM on
it, published to a local store under OUT_DIR (default .cache/demo), registered, and applied in a
fresh process with ``l2v_hub.patch(model)``. Offline: nothing is asked of the Hugging Face Hub.
"""

import os
import sys
from pathlib import Path

# Before huggingface_hub is imported (it reads the variable once): the demo never needs the Hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from .run import real_plan, run

if __name__ == "__main__":
    run(real_plan(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(".cache/demo")))
