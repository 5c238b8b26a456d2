"""Maximal Marginal Relevance (Carbonell & Goldstein, SIGIR 1998) over an item similarity."""

from __future__ import annotations

from typing import Literal

import numpy as np

from rankstack.reranking.diversity import DiversityConfig, DiversityReranker
from rankstack.reranking.similarity import ItemSimilarity


class MMRConfig(DiversityConfig):
    """MMR settings: ``relevance_weight`` is λ."""

    method: Literal["mmr"] = "mmr"


class MMR(DiversityReranker):
    """Greedy ``argmax_{i∉Y} λ·r_i − (1−λ)·max_{j∈Y} S_ij`` (the first pick is the most relevant item).

    ``r`` is the per-row relevance (min-max scaled scores by default), ``S`` the item similarity and ``Y``
    the items picked so far (Carbonell & Goldstein 1998). Cost O(N·k·d) per row, vectorised over rows.
    """

    name = "mmr"

    def __init__(self, similarity: ItemSimilarity, config: MMRConfig | None = None) -> None:
        super().__init__(similarity, config if config is not None else MMRConfig())

    def select(self, vecs: np.ndarray, residual: np.ndarray, relevance: np.ndarray, valid: np.ndarray,
               k: int) -> np.ndarray:
        """Positions [rows, k] in MMR pick order (float32, in-place updates: this runs on the serving path)."""
        lam = self.config.relevance_weight
        n_rows = vecs.shape[0]
        rows = np.arange(n_rows)
        vecs = np.ascontiguousarray(vecs, dtype=np.float32)
        base = (lam * relevance + np.where(valid, 0.0, -np.inf)).astype(np.float32)
        gain = base.copy()
        max_sim = np.full(base.shape, -np.inf, dtype=np.float32)
        penalty = np.float32(1.0 - lam)
        picks = np.empty((n_rows, k), dtype=np.int64)
        picked_gain = np.empty((n_rows, k), dtype=np.float32)
        for t in range(k):
            j = gain.argmax(axis=1)
            picks[:, t] = j
            picked_gain[:, t] = gain[rows, j]
            base[rows, j] = -np.inf
            if t == k - 1:
                break
            np.maximum(max_sim, np.matmul(vecs, vecs[rows, j][:, :, None])[..., 0], out=max_sim)
            np.subtract(base, penalty * max_sim, out=gain)
        picks[np.isneginf(picked_gain)] = -1  # the row ran out of valid items
        return picks
