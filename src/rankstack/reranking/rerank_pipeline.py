"""The re-rank stage as one YAML-configured component: filters → boosts → diversity → slate rules."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from rankstack.candidates import (
    PAD_ITEM,
    Candidates,
    compact,
    normalize_relevance,
    pads_trail,
    sort_by_score,
    take_rows,
)
from rankstack.errors import ConfigError
from rankstack.reranking.catalog import ItemCatalog
from rankstack.reranking.diversity import DiversityReranker
from rankstack.reranking.dpp import DPP, DPPConfig
from rankstack.reranking.mmr import MMR, MMRConfig
from rankstack.reranking.reranker import RerankContext
from rankstack.reranking.rules.engine import RuleEngine, has_duplicates
from rankstack.reranking.rules.loading import read_yaml_mapping, validate_config
from rankstack.reranking.rules.rule_config import Rule
from rankstack.reranking.similarity import ItemSimilarity


class SimilarityConfig(BaseModel):
    """Diversity over a catalog attribute: cosine of its (multi-)category one-hot vectors."""

    model_config = ConfigDict(extra="forbid")

    attribute: str = Field(min_length=1)


class RerankConfig(BaseModel):
    """One re-rank stage: optional diversity, how deep it orders, and the rules (unknown keys rejected)."""

    model_config = ConfigDict(extra="forbid")

    diversity: Annotated[MMRConfig | DPPConfig, Field(discriminator="method")] | None = None
    similarity: SimilarityConfig | None = None
    depth: int | None = Field(default=None, ge=1, description="items the diversifier orders (default 2·k)")
    rules: list[Rule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> RerankConfig:
        seen: dict[str, int] = {}
        for index, rule in enumerate(self.rules):
            if rule.name in seen:
                raise ValueError(f"rules[{index}] reuses the name '{rule.name}' of rules[{seen[rule.name]}]")
            seen[rule.name] = index
        return self


def load_rerank_config(path: str | Path) -> RerankConfig:
    """Read and validate a re-rank YAML file (ConfigError naming the file, rule and field on any problem)."""
    return validate_config(RerankConfig, read_yaml_mapping(path), str(path))


class RerankPipeline:
    """Filters → per-row min-max scaling + boosts → diversity over the top ``depth`` → bury, pins, caps, slots.

    Items the diversifier did not order follow in score order, so constraints can backfill the slate. Output
    scores are the scaled, boosted relevance of each shown item.
    """

    def __init__(self, config: RerankConfig, catalog: ItemCatalog, similarity: ItemSimilarity | None = None,
                 *, source: str = "<config>") -> None:
        self.config = config
        self.rules = RuleEngine(config.rules, catalog, source=source)
        self.diversifier: DiversityReranker | None = None
        if config.diversity is not None:
            if similarity is None:
                if config.similarity is None:
                    raise ConfigError(f"{source}: field 'similarity': diversity needs a similarity "
                                      "(give similarity.attribute or pass item embeddings)")
                try:
                    similarity = ItemSimilarity.from_categories(catalog.column(config.similarity.attribute))
                except ValueError as exc:
                    raise ConfigError(f"{source}: field 'similarity.attribute': {exc}") from None
            if isinstance(config.diversity, MMRConfig):
                self.diversifier = MMR(similarity, config.diversity)
            else:
                self.diversifier = DPP(similarity, config.diversity)

    @classmethod
    def from_yaml(cls, path: str | Path, catalog: ItemCatalog,
                  similarity: ItemSimilarity | None = None) -> RerankPipeline:
        """Load, validate and compile a re-rank YAML file against ``catalog``."""
        return cls(load_rerank_config(path), catalog, similarity, source=str(path))

    def rerank(self, candidates: Candidates, k: int, context: RerankContext) -> Candidates:
        """Slates [batch, k]; explanations go to ``context.trace`` when it is set."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        context.check(candidates)
        incoming, scores = compact(candidates.item_ids, candidates.scores)
        ids = self.rules.filter(incoming, context)
        scores = self.rules.adjust(ids, normalize_relevance(ids, scores, "minmax"))
        ids, scores = sort_by_score(ids, scores)
        distinct = not has_duplicates(incoming)  # filtering and reordering keep it so
        source = f"{candidates.source}+rerank"
        if self.diversifier is not None:
            depth = min(ids.shape[1], self.config.depth or 2 * k)
            head = self.diversifier.positions(Candidates(ids, scores, "rules"), depth)
            if distinct and self.rules.arranges_nothing(context) and _head_fills_slates(head, ids >= 0, k):
                return _take_head(ids, scores, head, k, source)
            ids, scores = _head_then_rest(ids, scores, head, distinct)
        return self.rules.slates(ids, scores, k, context, source=source, incoming=incoming, distinct=distinct)


def _head_fills_slates(head: np.ndarray, valid: np.ndarray, k: int) -> bool:
    """Whether each row's first ``min(k, valid items)`` are all in ``head`` (its -1s trailing)."""
    got = head >= 0
    want = np.minimum(k, valid.sum(axis=1))
    return valid.shape[1] > 0 and pads_trail(got) and bool(np.all(got.sum(axis=1) >= want))


def _take_head(ids: np.ndarray, scores: np.ndarray, head: np.ndarray, k: int, source: str) -> Candidates:
    """Slates [rows, k] of the entries at columns ``head`` (-1 and -inf past a row's picks)."""
    cols = head[:, :k] if head.shape[1] >= k else np.pad(head, ((0, 0), (0, k - head.shape[1])), constant_values=-1)
    got = cols >= 0
    safe = np.where(got, cols, 0)
    out_ids = np.where(got, take_rows(ids, safe), PAD_ITEM).astype(np.int64, copy=False)
    out_scores = np.where(got, take_rows(scores, safe), -np.inf).astype(np.float64, copy=False)
    return Candidates(out_ids, out_scores, source=source)


def _head_then_rest(ids: np.ndarray, scores: np.ndarray, head: np.ndarray,
                    distinct: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the entries at columns ``head`` (-1: none) in their order, then the row's others in column order.

    ``distinct``: no row repeats an item id (None: check).
    """
    if has_duplicates(ids) if distinct is None else not distinct:  # a repeated item goes by its first column
        safe = np.where(head >= 0, head, 0)
        head_ids = np.where(head >= 0, take_rows(ids, safe), -1) if ids.shape[1] else head
        return _head_then_rest_by_id(ids, scores, head_ids)
    n_rows, n = ids.shape
    rank = np.broadcast_to(np.arange(head.shape[1], head.shape[1] + n), (n_rows, n)).copy()
    rows, slots = np.nonzero(head >= 0)
    rank[rows, head[rows, slots]] = slots
    order = np.argsort(rank, axis=1)
    return take_rows(ids, order), take_rows(scores, order)


def _head_then_rest_by_id(ids: np.ndarray, scores: np.ndarray,
                          head: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the ``head`` items in their order, then the row's other items in their current order."""
    out_ids = np.empty_like(ids)
    out_scores = np.empty_like(scores)
    for row in range(ids.shape[0]):
        first = head[row][head[row] >= 0]
        sorter = np.argsort(ids[row], kind="stable")
        at = sorter[np.searchsorted(ids[row], first, sorter=sorter)]
        rest = np.ones(ids.shape[1], dtype=bool)
        rest[at] = False
        first_scores = scores[row][at]
        out_ids[row] = np.concatenate([first, ids[row][rest]])
        out_scores[row] = np.concatenate([first_scores, scores[row][rest]])
    return out_ids, out_scores
