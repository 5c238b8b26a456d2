"""Re-ranking: diversity (MMR, DPP), declarative business rules and slate constraints, with explanations.

The names below are imported on first use (module ``__getattr__``), so ``rankstack check-rules --help`` does
not import torch through ``base``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rankstack.lazy_exports import lazy_getattr

if TYPE_CHECKING:
    from rankstack.reranking.catalog import ItemCatalog
    from rankstack.reranking.dpp import DPP, DPPConfig, dpp_log_det
    from rankstack.reranking.exposure import ExposureStore, InMemoryExposureStore
    from rankstack.reranking.mmr import MMR, MMRConfig
    from rankstack.reranking.rerank_pipeline import RerankConfig, RerankPipeline, load_rerank_config
    from rankstack.reranking.reranker import Explanation, ExplanationTrace, RerankContext, Reranker
    from rankstack.reranking.rules.engine import RuleEngine
    from rankstack.reranking.similarity import ItemSimilarity

_HOME = {
    **dict.fromkeys(["Explanation", "ExplanationTrace", "RerankContext", "Reranker"], "reranker"),
    "ItemCatalog": "catalog",
    **dict.fromkeys(["DPP", "DPPConfig", "dpp_log_det"], "dpp"),
    **dict.fromkeys(["ExposureStore", "InMemoryExposureStore"], "exposure"),
    **dict.fromkeys(["MMR", "MMRConfig"], "mmr"),
    **dict.fromkeys(["RerankConfig", "RerankPipeline", "load_rerank_config"], "rerank_pipeline"),
    "RuleEngine": "rules.engine",
    "ItemSimilarity": "similarity",
}

__all__ = [
    "DPP",
    "MMR",
    "DPPConfig",
    "Explanation",
    "ExplanationTrace",
    "ExposureStore",
    "InMemoryExposureStore",
    "ItemCatalog",
    "ItemSimilarity",
    "MMRConfig",
    "RerankConfig",
    "RerankContext",
    "RerankPipeline",
    "Reranker",
    "RuleEngine",
    "dpp_log_det",
    "load_rerank_config",
]


__getattr__ = lazy_getattr(__name__, _HOME)
