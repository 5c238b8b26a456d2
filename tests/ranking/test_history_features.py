"""Batched history features equal a plain per-candidate loop over dense matrices, for any batch shape."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from rankstack.ranking import history_features
from rankstack.ranking.candidate_features import ItemStats
from rankstack.ranking.history_features import attribute_masks, history_block, row_entries
from rankstack.ranking.ranker import RankBatch


def random_stats(rng: np.random.Generator, n_items: int, n_values: int) -> ItemStats:
    """Statistics with random integer co-occurrence and transition counts and random 0/1 attributes."""
    def counts(density: float) -> sp.csr_matrix:
        dense = rng.integers(1, 6, (n_items, n_items)) * (rng.random((n_items, n_items)) < density)
        np.fill_diagonal(dense, 0)
        return sp.csr_matrix(dense.astype(np.float32))

    attrs = sp.csr_matrix((rng.random((n_items, n_values)) < 0.15).astype(np.float32))
    trans = counts(0.3)
    pop = rng.integers(0, 9, n_items).astype(np.float64)
    return ItemStats(pop, pop, np.zeros(n_items), np.zeros(3), counts(0.4), attrs, 0.5, trans,
                     np.asarray(trans.sum(axis=1)).ravel() + rng.integers(0, 3, n_items))


def reference(batch: RankBatch, stats: ItemStats, last_n: int, known: np.ndarray) -> list[np.ndarray]:
    """The seven history features candidate by candidate, from dense matrices."""
    cooc, trans, attrs = stats.cooc.toarray(), stats.trans.toarray(), stats.attributes.toarray() > 0
    root = np.sqrt(np.maximum(stats.pop_all, 1.0))
    out = [np.zeros(known.shape) for _ in range(7)]
    n = len(stats.pop_all)
    for r in range(known.shape[0]):
        hist = [int(h) for h in batch.histories[r][-last_n:] if 0 <= h < n]
        for c in range(known.shape[1]):
            if not hist or not known[r, c]:
                continue
            i = int(batch.item_ids[r, c])
            counts = [cooc[h, i] for h in hist]
            cosines = [cooc[h, i] / root[h] / root[i] for h in hist]
            probs = [trans[h, i] / max(stats.trans_out[h], 1.0) for h in hist[-5:]]
            values = [sum(counts), max(counts), sum(cosines), np.mean([(attrs[h] & attrs[i]).any() for h in hist]),
                      cosines[-1], probs[-1], np.mean(probs)]
            for f, value in enumerate(values):
                out[f][r, c] = value
    return out


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), rows=st.integers(1, 6), width=st.integers(1, 9), last_n=st.integers(1, 6),
       wide=st.booleans())
def test_batched_features_match_a_per_candidate_loop(seed: int, rows: int, width: int, last_n: int,
                                                      wide: bool) -> None:
    rng = np.random.default_rng(seed)
    n_items = 12
    stats = random_stats(rng, n_items, 300 if wide else 7)  # 300 values: past the bit masks, sparse products
    assert (stats.attribute_masks is None) == wide
    items = rng.integers(-1, n_items + 2, (rows, width))  # pads (-1), unknown items (>= n_items), repeats
    histories = [rng.integers(-1, n_items + 2, rng.integers(0, 9)) for _ in range(rows)]
    batch = RankBatch(np.zeros(rows, np.int64), items, histories)
    known = (items >= 0) & (items < n_items)
    got = history_block(batch, stats, last_n, known)
    for f, (a, b) in enumerate(zip(got, reference(batch, stats, last_n, known), strict=True)):
        assert a.shape == known.shape
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, err_msg=f"feature {f}")


def test_rows_without_listed_histories_and_empty_batches_get_zeros() -> None:
    stats = random_stats(np.random.default_rng(0), 5, 3)
    batch = RankBatch(np.zeros(2, np.int64), np.array([[0, 1], [2, -1]]), [np.array([3])])  # row 1: no history
    got = history_block(batch, stats, 4, batch.item_ids >= 0)
    assert all(f[1].tolist() == [0.0, 0.0] for f in got)
    empty = history_block(RankBatch(np.zeros(0, np.int64), np.zeros((0, 4), np.int64)), stats, 4,
                          np.zeros((0, 4), bool))
    assert [f.shape for f in empty] == [(0, 4)] * 7


def test_row_entries_read_repeated_and_empty_rows() -> None:
    matrix = sp.csr_matrix(np.array([[0, 2, 0], [0, 0, 0], [5, 0, 7]], np.float32))
    owner, column, value = row_entries(matrix, np.array([2, 1, 0, 2]))
    assert owner.tolist() == [0, 0, 2, 3, 3] and column.tolist() == [0, 2, 1, 0, 2]
    assert value.tolist() == [5, 7, 2, 5, 7]


@pytest.mark.parametrize(("values", "words"), [(0, 1), (64, 1), (65, 2), (256, 4), (257, None)])
def test_attribute_masks_cover_the_vocabulary_in_64_bit_words(values: int, words: int | None) -> None:
    attrs = sp.csr_matrix(np.eye(3, values, k=max(values - 3, 0), dtype=np.float32)) if values else \
        sp.csr_matrix((3, 0), dtype=np.float32)
    masks = attribute_masks(attrs)
    if words is None:
        assert masks is None
        return
    assert masks is not None and masks.shape == (3, words)
    if values:
        last = values - 1  # item 2 holds the vocabulary's last value
        assert int(masks[2, last // 64]) == 1 << (last % 64)


def test_a_failed_lookup_leaves_the_thread_table_clean() -> None:
    stats = random_stats(np.random.default_rng(1), 6, 3)
    batch = RankBatch(np.zeros(1, np.int64), np.array([[0, 1, 2]]), [np.array([3, 4])])
    known = batch.item_ids >= 0
    before = history_block(batch, stats, 4, known)
    slots = history_features._Slots(batch.item_ids, known, 6)
    with pytest.raises(IndexError):
        slots.find(np.array([0]), np.array([10**9]))  # an item id past every table
    assert (history_features._scratch(6) == -1).all()
    after = history_block(batch, stats, 4, known)
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))
