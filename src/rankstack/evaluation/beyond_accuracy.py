"""Beyond-accuracy slate metrics: category coverage, Gini of exposure (intra-list diversity lives in metrics).

``recs`` is an int array [n_users, K] of item ids, best first, ``-1`` padding, as in ``metrics``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from rankstack.evaluation.metrics import intra_list_diversity_at_k

__all__ = ["category_coverage_at_k", "exposure_counts", "gini", "gini_of_exposure_at_k", "intra_list_diversity_at_k"]


def category_coverage_at_k(recs: np.ndarray, item_categories: sp.spmatrix | sp.sparray, k: int) -> np.ndarray:
    """Per list: |⋃_{i≤K} categories(item_i)| / |categories|, from a binary item × category matrix (0 if none)."""
    cats = sp.csr_matrix(item_categories)
    n_items, n_cats = cats.shape
    top = np.asarray(recs)[:, :k]
    if n_cats == 0 or top.size == 0:
        return np.zeros(top.shape[0])
    if top.max(initial=-1) >= n_items:
        raise ValueError(f"recs holds item ids outside [-1, {n_items})")
    valid = top >= 0
    rows = np.repeat(np.arange(top.shape[0]), valid.sum(axis=1))
    pick = sp.csr_matrix((np.ones(rows.size), (rows, top[valid])), shape=(top.shape[0], n_items))
    covered = (pick @ (cats != 0).astype(np.float64)) > 0
    return np.asarray(covered.sum(axis=1)).ravel() / n_cats


def exposure_counts(recs: np.ndarray, n_items: int, k: int, *, position_weighted: bool = False) -> np.ndarray:
    """Exposure per item over all lists: count of top-K appearances, or Σ 1/log2(rank+1) when weighted."""
    top = np.asarray(recs)[:, :k]
    weights = 1.0 / np.log2(np.arange(2, top.shape[1] + 2)) if position_weighted else np.ones(top.shape[1])
    valid = top >= 0
    return np.bincount(top[valid], weights=np.broadcast_to(weights, top.shape)[valid], minlength=n_items)


def gini(values: np.ndarray) -> float:
    """Gini = Σ_{i=1..n} (2i − n − 1)·x_(i) / (n·Σ x) over x sorted ascending (0 = equal, → 1 = concentrated)."""
    x = np.sort(np.asarray(values, dtype=np.float64).ravel())
    n, total = x.size, x.sum()
    if n == 0 or total <= 0:
        return 0.0
    if x[0] < 0:
        raise ValueError("gini needs non-negative values")
    i = np.arange(1, n + 1)
    return float(((2 * i - n - 1) * x).sum() / (n * total))


def gini_of_exposure_at_k(recs: np.ndarray, n_items: int, k: int, *, position_weighted: bool = False) -> float:
    """Gini of :func:`exposure_counts` over all ``n_items`` catalogue items (never-shown items count as 0)."""
    return gini(exposure_counts(recs, n_items, k, position_weighted=position_weighted))
