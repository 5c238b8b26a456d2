"""The batch arrays every stage shares: ``Candidates``, padding, top-k over numpy scores with the one tie rule
(equal scores: lower item id first), row gathers and compaction.

The ground floor of rankstack: it imports numpy only (scipy inside :func:`sparse_topk`, for its argument) and
nothing of rankstack's, so every package may import it. The torch top-k with the same tie rule is
:mod:`rankstack.index.topk`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import scipy.sparse as sp

PAD_ITEM = -1
_WIDE_ROW = 4096  # columns from which row_counts counts, and rows_topk ranks, row by row


@dataclass(frozen=True)
class Candidates:
    """Top-k items per user: ``item_ids`` [batch, k] (``-1`` pads short rows), ``scores`` [batch, k]."""

    item_ids: np.ndarray
    scores: np.ndarray
    source: str

    def __post_init__(self) -> None:
        if self.item_ids.shape != self.scores.shape or self.item_ids.ndim != 2:
            raise ValueError(
                f"Candidates: item_ids {self.item_ids.shape} and scores {self.scores.shape} must be equal 2-D"
            )

    @property
    def k(self) -> int:
        """Number of slots per row."""
        return int(self.item_ids.shape[1])


def sparse_topk(scores: sp.csr_matrix, k: int, exclude: sp.csr_matrix | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (item ids, scores) [rows, k] among each row's stored entries of ``scores``, minus ``exclude``'s.

    Per row a partial sort of its stored entries only, never a dense [rows, n_items] matrix: for sources whose
    scores are sparse (item-kNN). Ties go to the lower item id; short rows are padded with -1 / -inf.
    """
    import scipy.sparse as sp

    scores = sp.csr_matrix(scores, dtype=np.float32)
    n_rows = scores.shape[0]
    out_ids = np.full((n_rows, k), PAD_ITEM, dtype=np.int64)
    out_scores = np.full((n_rows, k), -np.inf, dtype=np.float32)
    blocked = np.zeros(scores.shape[1], dtype=bool)
    for row in range(n_rows):
        at = slice(scores.indptr[row], scores.indptr[row + 1])
        items, values = scores.indices[at], scores.data[at]
        if exclude is not None:
            seen = exclude.indices[exclude.indptr[row]: exclude.indptr[row + 1]]
            blocked[seen] = True
            keep = ~blocked[items]
            blocked[seen] = False
            items, values = items[keep], values[keep]
        _write_row_topk(items, values, k, out_ids[row], out_scores[row])
    return out_ids, out_scores


def _write_row_topk(items: np.ndarray, values: np.ndarray, k: int, out_ids: np.ndarray,
                    out_scores: np.ndarray) -> None:
    """The top k of one row's entries (``items``, ``values``) by (value desc, item) into the padded ``out_ids`` /
    ``out_scores``."""
    if len(values) > k:  # everything tied with the k-th value competes, so ties at the cut go by item id too
        near = values >= np.partition(values, len(values) - k)[len(values) - k]
        items, values = items[near], values[near]
    order = np.lexsort((items, -values))[:k]
    out_ids[: len(order)], out_scores[: len(order)] = items[order], values[order]


def rows_topk(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (item ids, float32 scores) [rows, k] among each row's nonzero entries of dense ``scores``.

    The same lists as :func:`sparse_topk` on ``sp.csr_matrix(scores)``: ties go to the lower item id, short rows
    are padded with -1 / -inf. Only the entries that can make a row's top k (see :func:`top_candidates`) are
    sorted, all rows in one sort; rows at least ``_WIDE_ROW`` wide one at a time (:func:`_wide_row_candidates`).
    """
    n_rows, n_cols = scores.shape
    scores = np.asarray(scores, dtype=np.float32)
    if n_cols >= _WIDE_ROW:
        out_ids = np.full((n_rows, k), PAD_ITEM, dtype=np.int64)
        out_scores = np.full((n_rows, k), -np.inf, dtype=np.float32)
        for row, values in enumerate(scores):
            items = _wide_row_candidates(values, k)
            _write_row_topk(items, values[items], k, out_ids[row], out_scores[row])
        return out_ids, out_scores
    flat = np.flatnonzero(top_candidates(scores, k))  # (row, item) order
    rows, items = np.divmod(flat, n_cols)
    item_bits = max(n_cols - 1, 1).bit_length()
    if n_rows < 1 << (31 - item_bits):  # one int64 key (row, value descending, item): a plain sort, no argsort
        key = np.sort((rows << (32 + item_bits)) | (descending_key(scores.ravel()[flat]) << item_bits) | items)
        rows, items = key >> (32 + item_bits), key & ((1 << item_bits) - 1)
        return place_in_slots(rows, items, scores[rows, items], n_rows, k)
    values = scores.ravel()[flat]
    order = stable_lexsort((-values, rows))  # items stay ascending among ties
    return place_in_slots(rows[order], items[order], values[order], n_rows, k)


def _wide_row_candidates(row: np.ndarray, k: int) -> np.ndarray:
    """Ascending columns of ``row``'s nonzero entries that hold its top k (a superset): those at or above a cut c,
    the (2k / s)-th largest positive value of every s-th entry, when at least k reach it (then the k-th largest
    is ≥ c); else every nonzero entry. Only the sample's positive values are partitioned: a partition of a
    sample that is mostly zeros took ~25 µs of a 41k-wide row against ~5 µs."""
    stride = len(row) // (8 * k)
    if stride >= 4:
        sample = row[::stride]
        sample = sample[sample > 0]
        rank = -(-2 * k // stride)
        if len(sample) >= rank:
            items = np.flatnonzero(row >= np.partition(sample, len(sample) - rank)[len(sample) - rank])
            if len(items) >= k:
                return items
    return np.flatnonzero(row)


def top_candidates(scores: np.ndarray, k: int) -> np.ndarray:
    """Bool mask [rows, n]: per row, the nonzero entries at or above its k-th largest value (all of them when fewer
    than k are positive) or a superset of those.

    A cut c is tried first: the (2k / s)-th largest of every s-th entry; where c > 0 and at least k entries reach
    it, the k-th largest is ≥ c, so ``scores >= c`` holds the top k and its ties. Other rows get an exact
    partition. The sample's partition is s times smaller than the row's.
    """
    n_cols = scores.shape[1]
    if k >= n_cols:
        return scores != 0
    stride = n_cols // (8 * k)
    if stride < 4:
        return _at_or_above_kth(scores, k)
    rank = -(-2 * k // stride)
    sample = np.negative(scores[:, ::stride])
    sample.partition(rank - 1, axis=1)
    cut = -sample[:, rank - 1]
    keep = scores >= cut[:, None]
    redo = np.flatnonzero((cut <= 0) | (row_counts(keep) < k))
    if len(redo):
        keep[redo] = _at_or_above_kth(scores[redo], k)
    return keep


def _at_or_above_kth(scores: np.ndarray, k: int) -> np.ndarray:
    """Bool mask: the nonzero entries at or above the row's k-th largest nonzero value (all nonzero entries when
    there are at most k, or when that value is ≤ 0), from a partition of each row's nonzero values only."""
    keep = scores != 0
    for row in np.flatnonzero(row_counts(keep) > k).tolist():
        values = scores[row][keep[row]]
        kth = np.partition(values, len(values) - k)[len(values) - k]
        if kth > 0:
            keep[row] &= scores[row] >= kth
    return keep


def row_counts(mask: np.ndarray) -> np.ndarray:
    """``np.count_nonzero(mask, axis=1)`` of a bool [rows, n] mask; wide rows one at a time, where the per-row count
    takes numpy's fast path (~1.5 µs for a 41k-wide row against ~13 µs a row for the ``axis`` form)."""
    if mask.shape[1] < _WIDE_ROW:
        return np.count_nonzero(mask, axis=1)
    return np.fromiter((np.count_nonzero(row) for row in mask), dtype=np.intp, count=len(mask))


def descending_key(values: np.ndarray) -> np.ndarray:
    """int64 in [0, 2³²) per float32 value, ascending as the values descend (the IEEE bits, sign-folded)."""
    bits = np.asarray(values, dtype=np.float32).view(np.uint32).astype(np.int64)
    ascending = np.where(bits >= 1 << 31, (1 << 32) - 1 - bits, bits + (1 << 31))
    return (1 << 32) - 1 - ascending


def stable_lexsort(keys: Sequence[np.ndarray]) -> np.ndarray:
    """``np.lexsort(keys)`` (last key primary, full ties keep input order) as one stable argsort per key, last
    key last: the same permutation, several times faster than ``lexsort`` on the short arrays of one request."""
    order = np.argsort(keys[0], kind="stable")
    for key in keys[1:]:
        order = order[np.argsort(key[order], kind="stable")]
    return order


def place_in_slots(rows: np.ndarray, items: np.ndarray, values: np.ndarray, n_rows: int,
                   k: int) -> tuple[np.ndarray, np.ndarray]:
    """[n_rows, k] (ids, float32 scores) from entries sorted by row then rank: each row's first ``k``, padded."""
    slot = np.arange(len(rows)) - np.searchsorted(rows, np.arange(n_rows))[rows]
    fits = slot < k
    out_ids = np.full((n_rows, k), PAD_ITEM, dtype=np.int64)
    out_scores = np.full((n_rows, k), -np.inf, dtype=np.float32)
    at = rows[fits] * k + slot[fits]  # flat positions: one index array, numpy's fast path
    out_ids.ravel()[at] = items[fits]
    out_scores.ravel()[at] = values[fits]
    return out_ids, out_scores


def take_rows(values: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """``values[b, columns[b, j]]`` for columns in [0, N): ``np.take_along_axis(…, axis=1)`` as one flat take."""
    if values.shape[1] == 0:
        return np.take_along_axis(values, columns, axis=1)
    flat = np.ascontiguousarray(values)
    if flat.shape[0] == 1:
        return flat.take(columns)
    return flat.take(columns + np.arange(0, flat.size, flat.shape[1])[:, None])


def compact(item_ids: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Move each row's valid entries (id ≥ 0) to the front, keeping their order; pads get id -1, score -inf."""
    valid = item_ids >= 0
    if valid.all():
        return item_ids.astype(np.int64, copy=False), scores.astype(np.float64, copy=False)
    if pads_trail(valid):  # already in place (e.g. sorted by score): only the pads' values change
        return np.where(valid, item_ids, PAD_ITEM), np.where(valid, scores.astype(np.float64, copy=False), -np.inf)
    order = np.argsort(~valid, axis=1, kind="stable")
    ids = take_rows(item_ids, order)
    vals = take_rows(scores, order).astype(np.float64)
    pad = ~take_rows(valid, order)
    return np.where(pad, PAD_ITEM, ids), np.where(pad, -np.inf, vals)


def uncompact(positions: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Map ``positions`` among each row's valid entries (as :func:`compact` orders them) to columns of the row."""
    if pads_trail(valid):
        return positions
    order = np.argsort(~valid, axis=1, kind="stable")
    return np.where(positions >= 0, take_rows(order, np.maximum(positions, 0)), -1)


def pads_trail(valid: np.ndarray) -> bool:
    """Whether every row's valid entries come before its pads (no valid entry right after a pad)."""
    return not np.any(valid[:, 1:] > valid[:, :-1])


def sort_by_score(item_ids: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row ordered by descending score (stable; pads last)."""
    keyed = np.where(item_ids >= 0, scores, -np.inf).astype(np.float64)
    order = np.argsort(-keyed, axis=1, kind="stable")
    ids = take_rows(item_ids, order)
    vals = take_rows(keyed, order)
    return ids, np.where(ids >= 0, vals, -np.inf)


def normalize_relevance(item_ids: np.ndarray, scores: np.ndarray, method: str) -> np.ndarray:
    """Per-row relevance: ``minmax`` maps valid scores to [0, 1] (constant rows → 1); ``none`` keeps them."""
    if method not in ("minmax", "none"):
        raise ValueError(f"unknown relevance normalisation {method!r}; use 'minmax' or 'none'")
    s = np.asarray(scores, dtype=np.float64)
    finite = (item_ids >= 0) & np.isfinite(s)
    if method == "none":
        return np.where(finite, s, 0.0)
    if finite.all():
        lo, hi = s.min(axis=1, keepdims=True), s.max(axis=1, keepdims=True)
        return np.where(hi > lo, (s - lo) / np.where(hi > lo, hi - lo, 1.0), 1.0)
    lo = np.min(np.where(finite, s, np.inf), axis=1, keepdims=True)
    hi = np.max(np.where(finite, s, -np.inf), axis=1, keepdims=True)
    span = hi - lo
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(span > 0, (s - lo) / np.where(span > 0, span, 1.0), 1.0)
    return np.where(finite, out, 0.0)
