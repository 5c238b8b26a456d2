"""Shared machinery of the diversity re-rankers (MMR, DPP): config, batching and output assembly."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from rankstack.candidates import PAD_ITEM, Candidates, compact, normalize_relevance, take_rows, uncompact
from rankstack.reranking.reranker import RerankContext
from rankstack.reranking.similarity import ItemSimilarity


class DiversityConfig(BaseModel):
    """Trade-off knob shared by MMR and DPP; unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid")

    relevance_weight: float = Field(default=0.7, ge=0.0, le=1.0, description="1 = relevance only, 0 = diversity only")
    relevance: Literal["minmax", "none"] = "minmax"
    batch_size: int = Field(default=256, ge=1, description="rows re-ranked at once (bounds memory)")


class DiversityReranker(ABC):
    """Greedy selection of ``k`` of each row's candidates by relevance and dissimilarity to earlier picks."""

    name: str = "diversity"

    def __init__(self, similarity: ItemSimilarity, config: DiversityConfig) -> None:
        self.similarity = similarity
        self.config = config

    @abstractmethod
    def select(self, vecs: np.ndarray, residual: np.ndarray, relevance: np.ndarray, valid: np.ndarray,
               k: int) -> np.ndarray:
        """Column positions [rows, k] of the picks in pick order (-1 when a row runs out)."""

    def rerank(self, candidates: Candidates, k: int, context: RerankContext | None = None) -> Candidates:
        """Top-``k`` per row in pick order; scores are the incoming scores of the picked items."""
        picks = self.positions(candidates, k, context)
        if candidates.item_ids.shape[1] == 0:
            return Candidates(np.full(picks.shape, PAD_ITEM, dtype=np.int64), np.full(picks.shape, -np.inf),
                              source=f"{candidates.source}+{self.name}")
        got = picks >= 0
        safe = np.where(got, picks, 0)
        ids = np.where(got, take_rows(candidates.item_ids, safe), PAD_ITEM).astype(np.int64)
        scores = np.where(got, take_rows(candidates.scores, safe), -np.inf).astype(np.float64)
        return Candidates(ids, scores, source=f"{candidates.source}+{self.name}")

    def positions(self, candidates: Candidates, k: int, context: RerankContext | None = None) -> np.ndarray:
        """Columns [rows, k] of the picks in ``candidates`` in pick order (-1 once a row runs out)."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if context is not None:
            context.check(candidates)
        ids, scores = compact(candidates.item_ids, candidates.scores)
        picks = np.full((ids.shape[0], k), -1, dtype=np.int64)
        width = min(k, ids.shape[1])
        for start in range(0, ids.shape[0], self.config.batch_size):
            part = slice(start, start + self.config.batch_size)
            picks[part, :width] = self.select_rows(ids[part], scores[part], width)
        return uncompact(picks, candidates.item_ids >= 0)

    def select_rows(self, ids: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
        """Pick positions [rows, k] for compacted ``ids``/``scores`` rows."""
        valid = ids >= 0
        relevance = normalize_relevance(ids, scores, self.config.relevance)
        if self.config.relevance_weight >= 1.0:
            return relevance_order(relevance, valid, k)
        vecs, residual = self.similarity.gather(ids)
        return self.select(vecs, residual, relevance, valid, k)


def relevance_order(relevance: np.ndarray, valid: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` most relevant valid entries per row (-1 past the valid ones)."""
    order = np.argsort(-np.where(valid, relevance, -np.inf), axis=1, kind="stable")[:, :k]
    return np.where(take_rows(valid, order), order, -1)


def fill_by_relevance(picks: np.ndarray, relevance: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Complete rows whose greedy run stopped early with the most relevant items not yet picked."""
    short = np.flatnonzero((picks < 0).any(axis=1) & (valid.sum(axis=1) > (picks >= 0).sum(axis=1)))
    for row in short:
        taken = picks[row][picks[row] >= 0]
        left = valid[row].copy()
        left[taken] = False
        extra = relevance_order(relevance[row][None], left[None], picks.shape[1] - taken.size)[0]
        picks[row] = np.concatenate([taken, extra])
    return picks
