"""The ground floor's array helpers: sparse top-k against the dense top-k, its tie rule, the stable lexsort, row
compaction and row gathers against their plain numpy versions."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rankstack.candidates import (
    PAD_ITEM,
    compact,
    row_counts,
    rows_topk,
    sparse_topk,
    stable_lexsort,
    take_rows,
    uncompact,
)
from rankstack.index.topk import topk_excluding


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), rows=st.integers(1, 6), cols=st.integers(1, 40), k=st.integers(1, 45),
       density=st.floats(0.0, 1.0))
def test_sparse_topk_equals_dense_topk_over_stored_entries(seed: int, rows: int, cols: int, k: int,
                                                           density: float) -> None:
    rng = np.random.default_rng(seed)
    values = rng.permutation(rows * cols).reshape(rows, cols).astype(np.float32) + 1.0  # distinct, positive
    values[rng.random((rows, cols)) >= density] = 0.0
    exclude = sp.csr_matrix(rng.random((rows, cols)) < 0.2, dtype=np.float32)
    ids, scores = sparse_topk(sp.csr_matrix(values), k, exclude)
    dense = np.where((values > 0) & (exclude.toarray() == 0), values, -np.inf)
    want_scores, want_ids = topk_excluding(torch.from_numpy(dense), k, None, np.arange(rows))
    want_ids = want_ids.numpy()
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_array_equal(scores, want_scores.numpy())
    assert ((ids == PAD_ITEM) == np.isneginf(scores)).all()


def test_sparse_topk_breaks_ties_by_lower_item_id() -> None:
    ids, _ = sparse_topk(sp.csr_matrix(np.array([[0.0, 2.0, 1.0, 2.0, 2.0]], dtype=np.float32)), 3)
    assert ids.tolist() == [[1, 3, 4]]


def test_sparse_topk_breaks_ties_at_the_cut_by_lower_item_id() -> None:
    values = np.array([[1.0, 2.0, 2.0, 2.0, 2.0, 0.0, 2.0, 3.0]], dtype=np.float32)
    for k in range(1, 8):
        assert sparse_topk(sp.csr_matrix(values), k)[0].tolist() == rows_topk(values, k)[0].tolist()
    assert rows_topk(values, 3)[0].tolist() == [[7, 1, 2]]


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), keys=st.integers(1, 3), n=st.integers(0, 60))
def test_stable_lexsort_is_lexsort(seed: int, keys: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    columns = [rng.integers(0, 4, n), rng.random(n).round(1), -rng.integers(0, 3, n)][:keys]
    np.testing.assert_array_equal(stable_lexsort(columns), np.lexsort(columns))


def _compact_by_sort(item_ids: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The stable-argsort compaction (every row moved, whatever its layout)."""
    valid = item_ids >= 0
    order = np.argsort(~valid, axis=1, kind="stable")
    ids = np.take_along_axis(item_ids, order, axis=1)
    vals = np.take_along_axis(scores, order, axis=1).astype(np.float64)
    pad = ~np.take_along_axis(valid, order, axis=1)
    return np.where(pad, -1, ids), np.where(pad, -np.inf, vals)


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 100_000), rows=st.integers(1, 5), width=st.integers(0, 20),
       layout=st.sampled_from(["trailing", "anywhere", "none"]))
def test_compact_and_uncompact_match_the_sorting_version(seed: int, rows: int, width: int, layout: str) -> None:
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 100, (rows, width))
    if layout == "trailing":
        tail = np.arange(width) >= rng.integers(0, width + 1, (rows, 1))
        ids = np.where(tail, -1 - rng.integers(0, 3, ids.shape), ids)  # pads may be any negative id
    elif layout == "anywhere":
        ids = np.where(rng.random(ids.shape) < 0.3, -1, ids)
    scores = rng.standard_normal(ids.shape)
    got, ref = compact(ids, scores), _compact_by_sort(ids, scores)
    np.testing.assert_array_equal(got[0], ref[0])
    np.testing.assert_array_equal(got[1], ref[1])
    valid = ids >= 0
    picks = np.full((rows, 3), -1)
    for row, n in enumerate(valid.sum(axis=1)):
        some = rng.permutation(int(n))[:3]
        picks[row, : some.size] = some
    cols = uncompact(picks, valid)
    for row in range(rows):
        for pick, col in zip(picks[row], cols[row], strict=True):
            assert (col == -1) if pick < 0 else ids[row, col] == ref[0][row, pick]


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 100_000), rows=st.integers(0, 5), width=st.integers(0, 12), k=st.integers(0, 15),
       transposed=st.booleans())
def test_take_rows_is_take_along_axis(seed: int, rows: int, width: int, k: int, transposed: bool) -> None:
    rng = np.random.default_rng(seed)
    values = rng.standard_normal((width, rows)).T if transposed else rng.standard_normal((rows, width))
    columns = rng.integers(0, max(width, 1), (rows, k if width else 0))
    np.testing.assert_array_equal(take_rows(values, columns), np.take_along_axis(values, columns, axis=1))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), rows=st.integers(0, 5), width=st.sampled_from([0, 1, 7, 4095, 4096, 9000]),
       density=st.floats(0.0, 1.0))
def test_row_counts_is_count_nonzero_along_rows(seed: int, rows: int, width: int, density: float) -> None:
    """Narrow masks take numpy's ``axis`` count, wide ones a count per row: the same numbers either way."""
    mask = np.random.default_rng(seed).random((rows, width)) < density
    got = row_counts(mask)
    np.testing.assert_array_equal(got, np.count_nonzero(mask, axis=1))
    assert got.shape == (rows,)
