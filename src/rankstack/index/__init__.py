"""Vector indexes for inner-product top-k search: exact (torch) and approximate (FAISS HNSW / IVF-Flat), and the
torch top-k with rankstack's tie rule (``topk``); an index is made by name with
``rankstack.pipeline.components.build("index", kind, params)``.

The names below are imported on first use (``rankstack.lazy_exports``), so importing one submodule does not
import the others."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rankstack.lazy_exports import lazy_getattr

if TYPE_CHECKING:
    from rankstack.index.exact import ExactIndex, ExactIndexConfig
    from rankstack.index.vector_index import VectorIndex

_HOME = {"VectorIndex": "vector_index", **dict.fromkeys(["ExactIndex", "ExactIndexConfig"], "exact")}

__all__ = ["ExactIndex", "ExactIndexConfig", "VectorIndex"]

__getattr__ = lazy_getattr(__name__, _HOME)
