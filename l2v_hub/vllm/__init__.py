"""Serve l2v-hub packs on vLLM (placeholder while being written)."""
__all__: list[str] = []
