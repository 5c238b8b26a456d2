"""Retrieve → rank: merged candidates from several sources, re-scored by a ranker that sees only those."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from rankstack.retrieval.base import PAD_ITEM, CandidateSource
from rankstack.retrieval.merge import MergedCandidates, merge_candidates, merge_sources_config


@runtime_checkable
class CandidateScorer(Protocol):
    """A fitted model that re-scores given candidates from each user's recent history (e.g. SASRec)."""

    def score_candidates(self, histories: Sequence[np.ndarray], candidates: np.ndarray) -> torch.Tensor:
        """Scores [B, C] of ``candidates`` [B, C] (internal item ids, ``-1`` pads score −inf) given
        ``histories`` (oldest first)."""
        ...


@dataclass(frozen=True)
class TwoStageOutput:
    """Final top-k per user, the merged candidates behind them and the seconds each stage took."""

    recs: np.ndarray
    candidates: MergedCandidates
    retrieval_s: float
    ranking_s: float


class TwoStageRecommender:
    """Each source proposes ``n_candidates`` (seen items excluded); equal quotas merge them to ``n_candidates``;
    the ranker orders the merged set and the top-k are returned."""

    def __init__(self, sources: Sequence[CandidateSource], ranker: CandidateScorer, n_candidates: int) -> None:
        if not sources:
            raise ValueError("a two-stage recommender needs at least one candidate source")
        if n_candidates < 1:
            raise ValueError(f"n_candidates must be >= 1, got {n_candidates}")
        self.sources = list(sources)
        self.ranker = ranker
        self.n_candidates = n_candidates
        self.merge_config = merge_sources_config([s.name for s in self.sources], n_candidates)

    def retrieve(self, user_ids: np.ndarray) -> MergedCandidates:
        """Merged, de-duplicated candidates with per-source attribution."""
        lists = [s.retrieve(user_ids, self.n_candidates) for s in self.sources]
        return merge_candidates(lists, self.merge_config)

    def recommend(self, user_ids: np.ndarray, histories: Sequence[np.ndarray], k: int) -> TwoStageOutput:
        """Top-``k`` per user: retrieval, then the ranker's order of the merged candidates."""
        t0 = time.perf_counter()
        merged = self.retrieve(np.asarray(user_ids, dtype=np.int64))
        t1 = time.perf_counter()
        with torch.no_grad():
            scores = self.ranker.score_candidates(histories, merged.item_ids).float()
            top = torch.topk(scores, min(k, scores.shape[1]), dim=1)
        order = top.indices.cpu().numpy()
        recs = np.take_along_axis(merged.item_ids, order, axis=1)
        recs[~np.isfinite(top.values.cpu().numpy())] = PAD_ITEM
        return TwoStageOutput(recs, merged, t1 - t0, time.perf_counter() - t1)
