"""Re-ranking: diversity (MMR, DPP), declarative business rules and slate constraints, with explanations."""

from rankstack.reranking.base import Explanation, ExplanationTrace, RerankContext, Reranker
from rankstack.reranking.catalog import ItemCatalog
from rankstack.reranking.dpp import DPP, DPPConfig, dpp_log_det
from rankstack.reranking.exposure import ExposureStore, InMemoryExposureStore
from rankstack.reranking.mmr import MMR, MMRConfig
from rankstack.reranking.pipeline import RerankConfig, RerankPipeline, load_rerank_config
from rankstack.reranking.rules.engine import RuleEngine
from rankstack.reranking.similarity import ItemSimilarity

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
