"""Vector indexes for inner-product top-k search: exact (torch) and approximate (FAISS HNSW / IVF-Flat); an index
is made by name with ``rankstack.pipeline.components.build("index", kind, params)``."""

from rankstack.index.base import VectorIndex
from rankstack.index.exact import ExactIndex, ExactIndexConfig

__all__ = ["ExactIndex", "ExactIndexConfig", "VectorIndex"]
