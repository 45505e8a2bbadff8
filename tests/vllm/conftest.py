"""Settings every vLLM test engine needs on this CPU, set before vLLM reads its environment."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

# vllm_fixtures.py beside this file; tests/ (conftest.random_pack, tiny_llm) is on sys.path
# already through tests/conftest.py.
sys.path.insert(0, str(Path(__file__).parent))

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB of KV cache per engine
# A fresh torch.compile cache per test session: a graph compiled by an earlier run (of an older
# plugin) must never stand in for this one's.
os.environ.setdefault("VLLM_CACHE_ROOT", tempfile.mkdtemp(prefix="l2v-vllm-cache-"))
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "1")
