"""Vector indexes for inner-product top-k search: exact (torch) and approximate (FAISS HNSW / IVF-Flat)."""

from rankstack.index.base import VectorIndex
from rankstack.index.exact import ExactIndex, ExactIndexConfig

__all__ = ["ExactIndex", "ExactIndexConfig", "VectorIndex", "build_index"]


def build_index(kind: str, params: dict[str, object] | None = None) -> VectorIndex:
    """An empty index of ``kind`` ("exact", "hnsw" or "ivf-flat") with a validated config."""
    if kind == "exact":
        return ExactIndex(ExactIndexConfig.model_validate(params or {}))
    from rankstack.index.faiss_index import FaissHNSWConfig, FaissHNSWIndex, FaissIVFFlatConfig, FaissIVFFlatIndex

    if kind == "hnsw":
        return FaissHNSWIndex(FaissHNSWConfig.model_validate(params or {}))
    if kind == "ivf-flat":
        return FaissIVFFlatIndex(FaissIVFFlatConfig.model_validate(params or {}))
    raise ValueError(f"unknown index kind {kind!r}; available: exact, hnsw, ivf-flat")
