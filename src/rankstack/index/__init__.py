"""Vector indexes for inner-product top-k search: exact (torch) and approximate (FAISS HNSW / IVF-Flat), and the
torch top-k with rankstack's tie rule (``topk``).

The names below are imported on first use (``rankstack.lazy_exports``), so importing one submodule does not
import the others."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rankstack.lazy_exports import lazy_getattr

if TYPE_CHECKING:
    from rankstack.index.base import VectorIndex
    from rankstack.index.exact import ExactIndex, ExactIndexConfig

_HOME = {"VectorIndex": "base", **dict.fromkeys(["ExactIndex", "ExactIndexConfig"], "exact")}

__all__ = ["ExactIndex", "ExactIndexConfig", "VectorIndex", "build_index"]


def build_index(kind: str, params: dict[str, object] | None = None) -> VectorIndex:
    """An empty index of ``kind`` ("exact", "hnsw" or "ivf-flat") with a validated config."""
    if kind == "exact":
        from rankstack.index.exact import ExactIndex, ExactIndexConfig

        return ExactIndex(ExactIndexConfig.model_validate(params or {}))
    from rankstack.index.faiss_index import FaissHNSWConfig, FaissHNSWIndex, FaissIVFFlatConfig, FaissIVFFlatIndex

    if kind == "hnsw":
        return FaissHNSWIndex(FaissHNSWConfig.model_validate(params or {}))
    if kind == "ivf-flat":
        return FaissIVFFlatIndex(FaissIVFFlatConfig.model_validate(params or {}))
    raise ValueError(f"unknown index kind {kind!r}; available: exact, hnsw, ivf-flat")


__getattr__ = lazy_getattr(__name__, _HOME)
