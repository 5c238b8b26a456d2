"""What a trained pipeline holds (``PipelineParts``), as the artifact writes and reads it and ``Pipeline`` runs it, and
the vector indexes its sources are served from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rankstack.data.idmap import IdMap
from rankstack.errors import ConfigError
from rankstack.index import VectorIndex
from rankstack.pipeline import components
from rankstack.pipeline.config import IndexStage, PipelineConfig, SourceStage
from rankstack.pipeline.online_policy import PolicyFeatures
from rankstack.ranking.ranker import StoredRanker
from rankstack.reranking.catalog import ItemCatalog
from rankstack.retrieval.indexed import IndexedRetriever
from rankstack.retrieval.popular import MostPopular
from rankstack.retrieval.source import CandidateSource


@dataclass
class PipelineParts:
    """Everything a trained pipeline holds: fitted sources, optional ranker (a ``ranker`` component: a sequential
    model or the multi-task stage), the popularity fallback, id maps, each known user's training sequence
    (internal ids, oldest first), the item catalog and the vector indexes built for sources with an ``index``
    stage (with the stage each was built for, so a pipeline whose config asks for another index builds its
    own)."""

    config: PipelineConfig
    sources: dict[str, CandidateSource]
    fallback: MostPopular
    user_map: IdMap
    item_map: IdMap
    histories: list[np.ndarray]
    ranker: StoredRanker | None = None
    catalog: ItemCatalog | None = None
    manifest: dict[str, Any] = field(default_factory=dict)
    indexes: dict[str, tuple[IndexStage, VectorIndex]] = field(default_factory=dict)
    policy: PolicyFeatures | None = None


def new_index(stage: IndexStage, source: str) -> VectorIndex:
    """An empty vector index as ``sources[source].index`` asks (``ConfigError`` naming it when it cannot be)."""
    try:
        index: VectorIndex = components.build("index", stage.kind, stage.params)
    except (ValueError, ImportError) as exc:
        raise ConfigError(f"sources[{source}].index: {exc}") from None
    return index


def source_index(parts: PipelineParts, stage: SourceStage) -> VectorIndex:
    """The index ``stage.index`` asks for over the source's item vectors: the parts' own when it was built for the
    same index stage (e.g. read from the artifact), else built now (FAISS indexes train here) and kept in the
    parts, where the artifact writer finds it."""
    assert stage.index is not None
    kept = parts.indexes.get(stage.name)
    if kept is None or kept[0] != stage.index:
        built = IndexedRetriever(parts.sources[stage.name], new_index(stage.index, stage.name)).index
        kept = parts.indexes[stage.name] = (stage.index, built)
    return kept[1]
