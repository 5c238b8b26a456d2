"""Retrieve → rank: merged candidates from several sources, re-scored by a ranker that sees only those."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from rankstack.candidates import PAD_ITEM, Candidates
from rankstack.index.topk import topk_lowest_id
from rankstack.retrieval.base import CandidateSource
from rankstack.retrieval.merge import MergedCandidates, merge_candidates, merge_rows, merge_sources_config


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
    the ranker orders the merged set and the top-k are returned.

    ``device``: where the merge runs (:func:`~rankstack.retrieval.merge.merge_rows`, the same result as the
    NumPy merge); None merges with NumPy on the CPU.
    """

    def __init__(self, sources: Sequence[CandidateSource], ranker: CandidateScorer, n_candidates: int,
                 device: torch.device | str | None = None) -> None:
        if not sources:
            raise ValueError("a two-stage recommender needs at least one candidate source")
        if n_candidates < 1:
            raise ValueError(f"n_candidates must be >= 1, got {n_candidates}")
        self.sources = list(sources)
        self.ranker = ranker
        self.n_candidates = n_candidates
        self.device = device
        self.merge_config = merge_sources_config([s.name for s in self.sources], n_candidates)

    def retrieve(self, user_ids: np.ndarray) -> MergedCandidates:
        """Merged, de-duplicated candidates with per-source attribution."""
        return self.merge([s.retrieve(user_ids, self.n_candidates) for s in self.sources])

    def merge(self, lists: Sequence[Candidates], batch_size: int | None = None) -> MergedCandidates:
        """Merge the sources' lists (in ``sources`` order), each cut to its top ``n_candidates``: a list
        retrieved once at a larger size serves every smaller candidate budget. ``batch_size`` users at a
        time (None: all at once)."""
        n = self.n_candidates
        rows = lists[0].item_ids.shape[0] if lists else 0
        step = batch_size or max(rows, 1)
        parts = []
        for start in range(0, max(rows, 1), step):
            cut = [Candidates(c.item_ids[start : start + step, :n], c.scores[start : start + step, :n], c.source)
                   for c in lists]
            parts.append(merge_candidates(cut, self.merge_config) if self.device is None
                         else merge_rows(cut, self.merge_config, self.device))
        if len(parts) == 1:
            return parts[0]
        arrays = {f: np.concatenate([getattr(m, f) for m in parts])
                  for f in ("item_ids", "scores", "source_scores", "source_ranks")}
        return MergedCandidates(sources=parts[0].sources, **arrays)

    def rank(self, merged: MergedCandidates, histories: Sequence[np.ndarray], k: int,
             batch_size: int | None = None) -> np.ndarray:
        """Top-``k`` [B, k] of the merged candidates by the ranker's scores (``-1`` pads), ``batch_size`` users
        at a time (None: all at once)."""
        step = batch_size or max(len(histories), 1)
        out = []
        for start in range(0, len(histories), step):
            cands = merged.item_ids[start : start + step]
            with torch.no_grad():
                scores = self.ranker.score_candidates(histories[start : start + step], cands).float()
                values, at = topk_lowest_id(scores, min(k, scores.shape[1]))  # ties: earlier candidate first
            recs = np.take_along_axis(cands, at.cpu().numpy(), axis=1)
            recs[~np.isfinite(values.cpu().numpy())] = PAD_ITEM
            out.append(recs)
        return np.concatenate(out) if out else np.zeros((0, min(k, merged.item_ids.shape[1])), np.int64)

    def recommend(self, user_ids: np.ndarray, histories: Sequence[np.ndarray], k: int,
                  batch_size: int | None = None) -> TwoStageOutput:
        """Top-``k`` per user: retrieval, then the ranker's order of the merged candidates (ranked
        ``batch_size`` users at a time)."""
        t0 = time.perf_counter()
        merged = self.retrieve(np.asarray(user_ids, dtype=np.int64))
        t1 = time.perf_counter()
        recs = self.rank(merged, histories, k, batch_size)
        return TwoStageOutput(recs, merged, t1 - t0, time.perf_counter() - t1)
