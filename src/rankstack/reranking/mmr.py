"""Maximal Marginal Relevance (Carbonell & Goldstein, SIGIR 1998) over an item similarity."""

from __future__ import annotations

from typing import Literal

import numpy as np

from rankstack.candidates import normalize_relevance, take_rows
from rankstack.reranking.diversity import DiversityConfig, DiversityReranker
from rankstack.reranking.similarity import ItemSimilarity

SORT_MAX_ROWS = 12  # up to this many rows three row-wise sorts beat k batched greedy steps (N = 300, k = 40)


class MMRConfig(DiversityConfig):
    """MMR settings: ``relevance_weight`` is λ."""

    method: Literal["mmr"] = "mmr"


class MMR(DiversityReranker):
    """Greedy ``argmax_{i∉Y} λ·r_i − (1−λ)·max_{j∈Y} S_ij`` (the first pick is the most relevant item).

    ``r`` is the per-row relevance (min-max scaled scores by default), ``S`` the item similarity and ``Y``
    the items picked so far (Carbonell & Goldstein 1998). Cost O(N·k·d) per row, vectorised over rows; O(N log N)
    when every item has at most one category (:func:`categorical_mmr`, same picks).
    """

    name = "mmr"

    def __init__(self, similarity: ItemSimilarity, config: MMRConfig | None = None) -> None:
        super().__init__(similarity, config if config is not None else MMRConfig())

    def select_rows(self, ids: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
        """Pick positions [rows, k]; one-category similarities take the equality-test path."""
        codes = self.similarity.gather_categories(ids)
        if codes is None or self.config.relevance_weight >= 1.0:
            return super().select_rows(ids, scores, k)
        relevance = normalize_relevance(ids, scores, self.config.relevance)
        return categorical_mmr(codes, relevance, ids >= 0, k, self.config.relevance_weight)

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


def categorical_mmr(codes: np.ndarray, relevance: np.ndarray, valid: np.ndarray, k: int,
                    relevance_weight: float) -> np.ndarray:
    """MMR picks [rows, k] for ``S_ij = [c_i = c_j ≥ 0]``: ``gain_i = λ·r_i − (1−λ)·[c_i ∈ c(Y)]``, by sorting.

    With a 0/1 similarity the greedy order is known in advance: a category's first pick is its most relevant
    item (its *leader*, earliest position on ties), and after it the category's other items only ever count
    penalised. So the picks are every row sorted by ``λ·r_i`` for leaders and ``λ·r_i − (1−λ)`` for the rest
    (descending, earliest position first): a leader always precedes its followers, whose value is lower.
    ``codes`` [rows, N] are category codes (-1: none, similar to nothing); the float32 gains, pick order, ties
    and -1 for rows that run out are those of :meth:`MMR.select` on one-hot vectors. Above ``SORT_MAX_ROWS``
    rows, numpy's row-wise sorts slow down and k batched greedy steps (:func:`_greedy_rows`) are cheaper.
    """
    n_rows, n = codes.shape
    keys = np.where(codes >= 0, codes, -1 - np.arange(n))  # an uncategorised item only matches itself
    gain = (relevance_weight * relevance + np.where(valid, 0.0, -np.inf)).astype(np.float32)
    penalised = gain - np.float32(1.0 - relevance_weight)
    if n_rows > SORT_MAX_ROWS:
        return _greedy_rows(keys, gain, penalised, k)
    value = np.where(_leaders(keys, gain), gain, penalised)
    order = np.argsort(-value, axis=1, kind="stable")[:, :k]
    picks = np.full((n_rows, k), -1, dtype=np.int64)
    picks[:, :order.shape[1]] = np.where(np.isneginf(take_rows(value, order)), -1, order)  # -inf: ran out
    return picks


def _leaders(keys: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """Mask [rows, N] of each row's first entry of every key in ``(−gain, position)`` order."""
    by_gain = np.argsort(-gain, axis=1, kind="stable")
    by_key = np.argsort(take_rows(keys, by_gain), axis=1, kind="stable")  # within a key: by gain, then position
    position = take_rows(by_gain, by_key)  # the column of each entry in (key, −gain, position) order
    grouped = take_rows(keys, position)
    first = np.ones(grouped.shape, dtype=bool)
    first[:, 1:] = grouped[:, 1:] != grouped[:, :-1]
    leaders = np.zeros(keys.shape, dtype=bool)
    leaders.ravel()[(position + np.arange(0, keys.size, keys.shape[1])[:, None]).ravel()] = first.ravel()
    return leaders


def _greedy_rows(keys: np.ndarray, gain: np.ndarray, penalised: np.ndarray, k: int) -> np.ndarray:
    """Every row at once: pick ``argmax gain``, then ``gain ← penalised`` on the pick's key (its own entry −∞)."""
    n_rows, n = keys.shape
    row_start = np.arange(0, n_rows * n, n)
    flat_keys = keys.ravel()
    picks = np.empty((k, n_rows), dtype=np.int64)
    picked_gain = np.empty((k, n_rows), dtype=np.float32)
    for t in range(k):
        j = gain.argmax(axis=1)
        picks[t] = j
        at = row_start + j
        gain.take(at, out=picked_gain[t])
        penalised.put(at, -np.inf)
        np.copyto(gain, penalised, where=keys == flat_keys.take(at)[:, None])
    picks[np.isneginf(picked_gain)] = -1
    return picks.T
