"""Candidate features against each request's recent history, computed for a whole batch at once.

The co-occurrence, transition and attribute features of :mod:`rankstack.ranking.candidate_features` compare every
candidate with the row's last N history items. Rather than slicing sparse matrices per row (several scipy
indexing calls per request), this reads the history items' stored neighbours straight from the CSR arrays and
joins them to the batch's candidates on ``row * n_items + item`` keys, so the work is proportional to the
neighbours read plus the candidates, with a handful of numpy calls per batch. Attribute overlap uses per-item
bit masks when the vocabulary is small (:data:`MAX_MASK_WORDS` × 64 values) and sparse products otherwise.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

if TYPE_CHECKING:
    from rankstack.ranking.candidate_features import ItemStats
    from rankstack.ranking.ranker import RankBatch

RECENT = 5  # the transition average reads the last 5 history items
ROW_CHUNK = 256  # rows joined at once: bounds memory at about ROW_CHUNK × last_n × neighbours entries
MAX_MASK_WORDS = 4  # attribute vocabularies up to 256 values use bit masks


@dataclass(frozen=True)
class _Histories:
    """The rows' last-N known history items, concatenated: ``items`` [H], their batch ``row`` [H], ``from_end``
    [H] (0: the row's latest item) and the item count per row ``length`` [B]."""

    items: np.ndarray
    row: np.ndarray
    from_end: np.ndarray
    length: np.ndarray


def _histories(histories: list[np.ndarray], last_n: int, n_items: int) -> _Histories:
    """The last ``last_n`` items of each history (then those outside ``[0, n_items)`` dropped), concatenated."""
    kept = []
    for hist in histories:
        tail = np.asarray(hist[-last_n:], dtype=np.int64)
        kept.append(tail[(tail >= 0) & (tail < n_items)])
    length = np.array([len(h) for h in kept], dtype=np.int64)
    items = np.concatenate(kept) if kept else np.zeros(0, np.int64)
    row = np.repeat(np.arange(len(kept)), length)
    from_end = np.repeat(np.cumsum(length), length) - 1 - np.arange(len(items))
    return _Histories(items, row, from_end, length)


def row_entries(matrix: sp.csr_matrix, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every stored entry of ``matrix``'s rows ``rows`` (repeats allowed): (owner [E] index into ``rows``,
    column [E], value [E] float64)."""
    starts = matrix.indptr[rows].astype(np.int64)
    lengths = matrix.indptr[rows + 1].astype(np.int64) - starts
    total = int(lengths.sum())
    owner = np.repeat(np.arange(len(rows)), lengths)
    at = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths) + np.arange(total)
    return owner, matrix.indices[at].astype(np.int64), matrix.data[at].astype(np.float64)


_LOCAL = threading.local()


def _scratch(n_items: int) -> np.ndarray:
    """This thread's item → slot table of ``n_items`` entries, all -1 (callers restore the -1s they write)."""
    table = getattr(_LOCAL, "table", None)
    if table is None or len(table) < n_items:
        table = _LOCAL.table = np.full(n_items, -1, dtype=np.int32)
    return table


class _Slots:
    """The batch's distinct (row, known candidate item) pairs, sorted by ``row * n_items + item``; ``of`` [B, C]
    maps each candidate to its slot (-1: pad or unknown item)."""

    def __init__(self, item_ids: np.ndarray, known: np.ndarray, n_items: int) -> None:
        self.n_items = n_items
        rows = np.broadcast_to(np.arange(item_ids.shape[0])[:, None], item_ids.shape)
        keys = rows[known].astype(np.int64) * n_items + item_ids[known]
        self.keys, inverse = np.unique(keys, return_inverse=True)
        self.of = np.full(item_ids.shape, -1, dtype=np.int64)
        self.of[known] = inverse.ravel()
        self.row, self.item = np.divmod(self.keys, n_items)

    def find(self, rows: np.ndarray, items: np.ndarray) -> np.ndarray:
        """The slot of each (row, item) pair, -1 where the item is not among the row's candidates; ``rows`` must
        be sorted (a dense item → slot table is filled for one row at a time)."""
        out = np.full(len(rows), -1, dtype=np.int64)
        if not len(self.keys) or not len(rows):
            return out
        table = _scratch(self.n_items)
        spans = np.arange(int(max(rows[-1], self.row[-1])) + 2)
        at, own = np.searchsorted(rows, spans), np.searchsorted(self.row, spans)
        for r in np.flatnonzero((np.diff(at) > 0) & (np.diff(own) > 0)):
            mine = self.item[own[r]: own[r + 1]]
            table[mine] = np.arange(own[r], own[r + 1])
            try:
                out[at[r]: at[r + 1]] = table[items[at[r]: at[r + 1]]]
            finally:  # the table is this thread's for every later call: leave it all -1 whatever happens
                table[mine] = -1
        return out

    def spread(self, values: np.ndarray) -> np.ndarray:
        """Per-slot ``values`` laid out as [B, C] (zeros on pads and unknown items)."""
        return np.where(self.of >= 0, values[np.maximum(self.of, 0)], 0.0) if len(values) else \
            np.zeros(self.of.shape)


def _joined(matrix: sp.csr_matrix, items: np.ndarray, rows: np.ndarray,
            slots: _Slots) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The stored entries of ``matrix``'s rows ``items`` whose column is a candidate of the same batch row:
    (owner index into ``items``, slot, value)."""
    owner, column, value = row_entries(matrix, items)
    slot = slots.find(rows[owner], column)
    hit = slot >= 0
    return owner[hit], slot[hit], value[hit]


def attribute_masks(attributes: sp.csr_matrix) -> np.ndarray | None:
    """Each item's attribute values as bits [n_items, words] uint64, or None past :data:`MAX_MASK_WORDS` words."""
    words = max(1, -(-attributes.shape[1] // 64))
    if words > MAX_MASK_WORDS:
        return None
    coo = attributes.tocoo()
    masks = np.zeros((attributes.shape[0], words), dtype=np.uint64)
    bits = np.left_shift(np.uint64(1), (coo.col % 64).astype(np.uint64))
    np.bitwise_or.at(masks, (coo.row, coo.col // 64), bits)
    return masks


def _match_masks(masks: np.ndarray, hist: _Histories, item_ids: np.ndarray, known: np.ndarray) -> np.ndarray:
    """[B, C] share of each row's history items that have an attribute value in common with the candidate."""
    rows = known.shape[0]
    longest = int(hist.length.max()) if len(hist.length) else 0
    if not longest:
        return np.zeros(known.shape)
    padded = np.zeros((rows, longest, masks.shape[1]), dtype=np.uint64)  # zero masks share nothing
    padded[hist.row, longest - 1 - hist.from_end] = masks[hist.items]
    cand = masks[np.where(known, item_ids, 0)]  # [B, C, W]
    common = padded[:, :, None, 0] & cand[:, None, :, 0]  # [B, N, C] values in common, word by word
    for word in range(1, masks.shape[1]):
        common |= padded[:, :, None, word] & cand[:, None, :, word]
    return np.where(known, np.count_nonzero(common, axis=1) / np.maximum(hist.length, 1)[:, None], 0.0)


def _match_sparse(attributes: sp.csr_matrix, hist: _Histories, item_ids: np.ndarray,
                  known: np.ndarray) -> np.ndarray:
    """:func:`_match_masks` with sparse products row by row (wide attribute vocabularies)."""
    out = np.zeros(known.shape)
    for r in np.flatnonzero(hist.length):
        cand = np.where(known[r], item_ids[r], 0)
        shared = (attributes[hist.items[hist.row == r]] @ attributes[cand].T).toarray()  # [N, C]
        out[r] = np.where(known[r], (shared > 0).mean(axis=0), 0.0)
    return out


def history_block(batch: RankBatch, stats: ItemStats, last_n: int, known: np.ndarray) -> list[np.ndarray]:
    """[B, C] each: co-occurrence sum, max and cosine ``Σ_h c(h,i) / sqrt(n_h n_i)`` of each candidate with the
    last ``last_n`` history items, their attribute match share, the cosine with the last item, and the transition
    probability ``P(i | h) = t(h, i) / t(h, ·)`` from the last item and averaged over the last 5. ``known``
    marks candidates inside the statistics' items; the rest, and rows without history, get zeros."""
    parts = [_block_rows(batch, stats, last_n, known, slice(s, s + ROW_CHUNK))
             for s in range(0, max(len(known), 1), ROW_CHUNK)]
    return [np.concatenate(cols) for cols in zip(*parts, strict=True)]


def _block_rows(batch: RankBatch, stats: ItemStats, last_n: int, known: np.ndarray,
                rows: slice) -> list[np.ndarray]:
    """:func:`history_block` of the batch rows ``rows``."""
    item_ids, known = batch.item_ids[rows], known[rows]
    n_items = stats.cooc.shape[0]
    listed = list(batch.histories[rows])
    hist = _histories(listed + [np.zeros(0, np.int64)] * (len(known) - len(listed)), last_n, n_items)
    slots = _Slots(item_ids, known, n_items)
    size = len(slots.keys)

    owner, slot, count = _joined(stats.cooc, hist.items, hist.row, slots)
    co_max = np.zeros(size)
    np.maximum.at(co_max, slot, count)
    cosine = count / np.sqrt(np.maximum(stats.pop_all[hist.items[owner]], 1.0) *
                             np.maximum(stats.pop_all[slots.item[slot]], 1.0))
    last = hist.from_end[owner] == 0

    recent = hist.from_end < RECENT
    r_items, r_rows = hist.items[recent], hist.row[recent]
    r_owner, r_slot, times = _joined(stats.trans, r_items, r_rows, slots)
    prob = times / np.maximum(stats.trans_out[r_items[r_owner]], 1.0)
    r_last = hist.from_end[recent][r_owner] == 0
    n_recent = np.maximum(np.minimum(hist.length, RECENT), 1)[slots.row]

    masks = stats.attribute_masks
    if stats.attributes.shape[1] == 0:
        match = np.zeros(known.shape)
    elif masks is not None:
        match = _match_masks(masks, hist, item_ids, known)
    else:
        match = _match_sparse(stats.attributes, hist, item_ids, known)
    per_slot = [np.bincount(slot, count, size), co_max, np.bincount(slot, cosine, size),
                np.bincount(slot[last], cosine[last], size), np.bincount(r_slot[r_last], prob[r_last], size),
                np.bincount(r_slot, prob, size) / n_recent]
    co_sum, co_max, co_cos, cos_last, tr_last, tr_five = (slots.spread(v) for v in per_slot)
    return [co_sum, co_max, co_cos, match, cos_last, tr_last, tr_five]
