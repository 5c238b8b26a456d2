"""Maximal Marginal Relevance (Carbonell & Goldstein, SIGIR 1998) over an item similarity."""

from __future__ import annotations

import heapq
import math
from typing import Literal

import numpy as np

from rankstack.candidates import normalize_relevance
from rankstack.reranking.diversity import DiversityConfig, DiversityReranker
from rankstack.reranking.similarity import ItemSimilarity

SCAN_MAX_ROWS = 8  # up to this many rows the per-row Python scan beats the batched numpy steps


class MMRConfig(DiversityConfig):
    """MMR settings: ``relevance_weight`` is λ."""

    method: Literal["mmr"] = "mmr"


class MMR(DiversityReranker):
    """Greedy ``argmax_{i∉Y} λ·r_i − (1−λ)·max_{j∈Y} S_ij`` (the first pick is the most relevant item).

    ``r`` is the per-row relevance (min-max scaled scores by default), ``S`` the item similarity and ``Y``
    the items picked so far (Carbonell & Goldstein 1998). Cost O(N·k·d) per row, vectorised over rows; O(N·k)
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
    """MMR picks [rows, k] for ``S_ij = [c_i = c_j ≥ 0]``: ``gain_i = λ·r_i − (1−λ)·[c_i ∈ c(Y)]``.

    ``codes`` [rows, N] are category codes (-1: none, similar to nothing); the float32 gains, pick order, ties
    (first position) and -1 for rows that run out are those of :meth:`MMR.select` on one-hot vectors.
    """
    n = codes.shape[1]
    keys = np.where(codes >= 0, codes, -1 - np.arange(n))  # an uncategorised item only matches itself
    gain = (relevance_weight * relevance + np.where(valid, 0.0, -np.inf)).astype(np.float32)
    penalised = gain - np.float32(1.0 - relevance_weight)
    if codes.shape[0] <= SCAN_MAX_ROWS:
        return _lazy_rows(keys, gain, penalised, k)
    return _greedy_rows(keys, gain, penalised, k)


def _lazy_rows(keys: np.ndarray, gain: np.ndarray, penalised: np.ndarray, k: int) -> np.ndarray:
    """Each row lazily: unused-key items in ``(−gain_i, i)`` order, the rest in a heap by ``(−penalised_i, i)``.

    An item enters the heap when the scan reaches it after its key was used; until then its penalised gain
    cannot beat the scan's head (``penalised_i ≤ gain_i``), so each step compares two candidates.
    """
    orders = np.argsort(-gain, axis=1, kind="stable").tolist()
    rows = zip(orders, gain.tolist(), penalised.tolist(), keys.tolist(), strict=True)
    return np.array([_scan(*row, k) for row in rows], dtype=np.int64).reshape(gain.shape[0], k)


def _scan(order: list[int], fresh: list[float], pen: list[float], key: list[int], k: int) -> list[int]:
    """:func:`_lazy_rows` for one row (Python lists: a step costs two comparisons and a heap operation)."""
    used: set[int] = set()
    heap: list[tuple[float, int]] = []
    picks = [-1] * k
    at, end = 0, len(order)
    for t in range(k):
        while at < end and key[order[at]] in used:
            heapq.heappush(heap, (-pen[order[at]], order[at]))
            at += 1
        head = (-fresh[order[at]], order[at]) if at < end else (math.inf, end)
        if heap and heap[0] < head:
            best = heapq.heappop(heap)
        else:
            best, at = head, at + 1
        if best[0] == math.inf:  # the best gain is −∞: the row ran out of valid items
            break
        picks[t] = best[1]
        used.add(key[best[1]])
    return picks


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
