"""The request-path fast versions (item-kNN accumulation on dense rows or on the entries a user reaches,
``rows_topk``, the merge) return exactly what the straightforward versions return: the sparse product with a per-row
top-k, the dense ``score``, the original merge."""

from __future__ import annotations

from collections.abc import Sequence
from unittest import mock

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from rankstack.candidates import PAD_ITEM, Candidates, rows_topk, sparse_topk
from rankstack.retrieval import itemknn
from rankstack.retrieval.itemknn import ItemKNN
from rankstack.retrieval.merge import MergeConfig, MergedCandidates, merge_candidates


def _reference_topk(dense: np.ndarray, k: int, exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per row: nonzero, non-excluded entries sorted by (score desc, item asc), the first k, padded."""
    ids = np.full((len(dense), k), PAD_ITEM, np.int64)
    scores = np.full((len(dense), k), -np.inf, np.float32)
    for row, values in enumerate(dense.astype(np.float32)):
        items = np.flatnonzero((values != 0) & (True if exclude is None else ~exclude[row]))
        order = sorted(items.tolist(), key=lambda i: (-values[i], i))[:k]
        ids[row, : len(order)], scores[row, : len(order)] = order, values[order]
    return ids, scores


def _matrix(rng: np.random.Generator, shape: tuple[int, int], density: float, levels: int) -> np.ndarray:
    """Random float32 matrix: ``levels`` > 0 draws values from few levels (many ties), 0 from a continuum."""
    values = rng.integers(1, levels + 1, shape) / levels if levels else rng.random(shape) + 1e-3
    return np.where(rng.random(shape) < density, values, 0.0).astype(np.float32)


def _signed_matrix(seed: int, shape: tuple[int, int], density: float, levels: int, negative: bool) -> np.ndarray:
    """``_matrix``, with ~30% of its stored values negated when ``negative`` (they rank below positive ones and
    above nothing)."""
    rng = np.random.default_rng(seed)
    dense = _matrix(rng, shape, density, levels)
    if negative:
        dense *= np.where(rng.random(dense.shape) < 0.3, -1, 1).astype(np.float32)
    return dense


def _assert_rows_topk_is_the_reference(dense: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``rows_topk(dense, k)`` equals the sorted reference, in int64 ids and float32 scores; returns the lists."""
    ids, scores = rows_topk(dense, k)
    want_ids, want_scores = _reference_topk(dense, k)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_array_equal(scores, want_scores)
    assert ids.dtype == np.int64 and scores.dtype == np.float32
    return want_ids, want_scores


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 10_000), rows=st.integers(0, 6), cols=st.integers(1, 40), k=st.integers(1, 45),
       density=st.floats(0.0, 1.0), levels=st.sampled_from([0, 1, 3]), negative=st.booleans())
def test_rows_topk_equals_the_sorted_reference_and_sparse_topk(seed: int, rows: int, cols: int, k: int,
                                                               density: float, levels: int, negative: bool) -> None:
    dense = _signed_matrix(seed, (rows, cols), density, levels, negative)
    want_ids, want_scores = _assert_rows_topk_is_the_reference(dense, k)
    sparse_ids, sparse_scores = sparse_topk(sp.csr_matrix(dense), k)
    np.testing.assert_array_equal(sparse_ids, want_ids)
    np.testing.assert_array_equal(sparse_scores, want_scores)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), rows=st.integers(1, 5), cols=st.integers(200, 3000), k=st.integers(1, 40),
       density=st.floats(0.0, 1.0), levels=st.sampled_from([0, 1, 5]), skew=st.booleans())
def test_rows_topk_with_a_sampled_cut_equals_the_sorted_reference(seed: int, rows: int, cols: int, k: int,
                                                                  density: float, levels: int, skew: bool) -> None:
    """Wide rows take the sampled cut (and its exact fallback on rows where too few entries reach it)."""
    rng = np.random.default_rng(seed)
    dense = _matrix(rng, (rows, cols), density, levels)
    if skew:  # large scores only off the sample's grid, so the sampled cut misses them on some rows
        dense[:, 1::7] *= 100
    ids, scores = rows_topk(dense, k)
    want_ids, want_scores = _reference_topk(dense, k)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_array_equal(scores, want_scores)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), rows=st.integers(0, 3), cols=st.integers(4096, 12_000), k=st.integers(1, 400),
       density=st.floats(0.0, 1.0), levels=st.sampled_from([0, 1, 5]), negative=st.booleans())
def test_rows_topk_on_wide_rows_equals_the_sorted_reference(seed: int, rows: int, cols: int, k: int,
                                                            density: float, levels: int, negative: bool) -> None:
    """Rows of at least ``_WIDE_ROW`` columns are ranked one at a time (sampled cut, or every nonzero entry)."""
    _assert_rows_topk_is_the_reference(_signed_matrix(seed, (rows, cols), density, levels, negative), k)


@pytest.mark.parametrize("case", ["sample holds the largest", "sample mostly zero", "fewer than k nonzero",
                                  "all zero"])
def test_rows_topk_on_a_wide_row_whose_sampled_cut_fails(case: str) -> None:
    """The wide-row cut falls back to every nonzero entry where fewer than k entries reach it or the sample holds
    too few positive values; the lists are the reference's either way."""
    rng = np.random.default_rng(7)
    cols, k = 41_000, 300
    stride = cols // (8 * k)
    row = (rng.random(cols) * 0.5 + 0.01).astype(np.float32)
    if case == "sample holds the largest":  # only the sampled entries reach the cut: fewer than k of them do
        row[::stride] += 10.0
    elif case == "sample mostly zero":
        row[::stride] = 0.0
        row[: stride * 5: stride] = 1.0
    elif case == "fewer than k nonzero":
        row[rng.random(cols) > 0.005] = 0.0
    else:
        row[:] = 0.0
    _assert_rows_topk_is_the_reference(row[None, :], k)


def _knn(rng: np.random.Generator, n_users: int, n_items: int, density: float, levels: int,
         weighted: bool) -> ItemKNN:
    """An ItemKNN with a random interaction matrix (some users with no items) and a random similarity matrix."""
    model = ItemKNN()
    train = (rng.random((n_users, n_items)) < density).astype(np.float32)
    train[rng.random(n_users) < 0.2] = 0.0  # users with no training items
    if weighted:
        train *= rng.integers(1, 4, train.shape).astype(np.float32)
    sim = _matrix(rng, (n_items, n_items), 0.3, levels)
    np.fill_diagonal(sim, 0.0)
    model.train_, model.similarity_ = sp.csr_matrix(train), sp.csr_matrix(sim)
    return model


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 10_000), n_users=st.integers(1, 12), n_items=st.integers(1, 30),
       density=st.floats(0.0, 0.6), k=st.integers(1, 35), levels=st.sampled_from([0, 1, 4]),
       weighted=st.booleans(), exclude_seen=st.booleans())
def test_itemknn_retrieve_equals_the_sparse_product_and_the_dense_scores(
        seed: int, n_users: int, n_items: int, density: float, k: int, levels: int, weighted: bool,
        exclude_seen: bool) -> None:
    rng = np.random.default_rng(seed)
    model = _knn(rng, n_users, n_items, density, levels, weighted)
    users = rng.integers(0, n_users, int(rng.integers(0, 9)))
    got = model.retrieve(users, k, exclude_seen=exclude_seen)
    for share in (0.0, 1e9):  # every user on a dense row, every user on the entries they reach
        with mock.patch.object(itemknn, "_SPARSE_SHARE", share):
            path = model.retrieve(users, k, exclude_seen=exclude_seen)
        np.testing.assert_array_equal(path.item_ids, got.item_ids)
        np.testing.assert_array_equal(path.scores, got.scores)
    train = model.train_
    assert train is not None
    rows = train[users]
    want_ids, want_scores = sparse_topk(rows @ model.similarity_, k, rows if exclude_seen else None)
    np.testing.assert_array_equal(got.item_ids, want_ids)
    np.testing.assert_array_equal(got.scores, want_scores)  # bit-identical float32 sums
    seen = rows.toarray() != 0 if exclude_seen else None
    dense_ids, dense_scores = _reference_topk(model.score(users).numpy(), k, seen)
    np.testing.assert_array_equal(got.item_ids, dense_ids)
    np.testing.assert_array_equal(got.scores, dense_scores)
    assert got.source == "itemknn" and got.item_ids.shape == (len(users), k)


def test_itemknn_retrieve_in_blocks_equals_one_block(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    model = _knn(rng, 40, 25, 0.3, 2, False)
    users = rng.integers(0, 40, 30)
    whole = model.retrieve(users, 10)
    monkeypatch.setattr(itemknn, "_BLOCK_CELLS", 25 * 4)  # four users per block
    blocks = model.retrieve(users, 10)
    np.testing.assert_array_equal(blocks.item_ids, whole.item_ids)
    np.testing.assert_array_equal(blocks.scores, whole.scores)
    np.testing.assert_array_equal(model.retrieve(users - 40, 10).item_ids, whole.item_ids)  # negative ids wrap
    with pytest.raises(IndexError):
        model.retrieve(np.array([40]), 10)


def _reference_merge(candidates: Sequence[Candidates], cfg: MergeConfig) -> MergedCandidates:
    """The merge as first written: per-source entry lists, ``np.unique`` keys, ``np.lexsort`` order."""
    names = tuple(c.source for c in candidates)
    batch, n_src = candidates[0].item_ids.shape[0], len(candidates)
    rows_l, items_l, src_l, rank_l, score_l = [], [], [], [], []
    for j, c in enumerate(candidates):
        r, pos = np.nonzero(c.item_ids >= 0)
        rows_l.append(r)
        items_l.append(c.item_ids[r, pos].astype(np.int64))
        src_l.append(np.full(len(r), j, np.int64))
        rank_l.append(pos.astype(np.int64))
        score_l.append(c.scores[r, pos].astype(np.float32))
    rows, items, src = np.concatenate(rows_l), np.concatenate(items_l), np.concatenate(src_l)
    ranks, raw = np.concatenate(rank_l), np.concatenate(score_l)
    n_items = int(items.max(initial=0)) + 1
    keys, inverse = np.unique(rows * n_items + items, return_inverse=True)
    weights = np.array([cfg.weights.get(n, 1.0) for n in names], np.float64)
    quotas = np.array([cfg.quotas.get(n, 0) for n in names], np.int64)
    fused = np.bincount(inverse, weights=weights[src] / (cfg.rrf_k + ranks + 1.0), minlength=len(keys))
    in_quota = np.bincount(inverse, weights=ranks < quotas[src], minlength=len(keys)) > 0
    per_src_score = np.full((len(keys), n_src), np.nan, np.float32)
    per_src_rank = np.full((len(keys), n_src), -1, np.int32)
    order = np.argsort(ranks, kind="stable")[::-1]
    per_src_score[inverse[order], src[order]] = raw[order]
    per_src_rank[inverse[order], src[order]] = ranks[order]
    u_rows, u_items = keys // n_items, keys % n_items
    order = np.lexsort((-fused, ~in_quota, u_rows))
    slot = np.arange(len(keys)) - np.searchsorted(u_rows[order], np.arange(batch))[u_rows[order]]
    keep, slot = order[slot < cfg.k], slot[slot < cfg.k]
    out = (np.full((batch, cfg.k), PAD_ITEM, np.int64), np.full((batch, cfg.k), -np.inf, np.float32),
           np.full((batch, cfg.k, n_src), np.nan, np.float32), np.full((batch, cfg.k, n_src), -1, np.int32))
    r = u_rows[keep]
    out[0][r, slot], out[1][r, slot] = u_items[keep], fused[keep]
    out[2][r, slot], out[3][r, slot] = per_src_score[keep], per_src_rank[keep]
    return MergedCandidates(out[0], out[1], names, out[2], out[3])


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 10_000), n_rows=st.integers(0, 8), n_src=st.integers(1, 4), n_items=st.integers(1, 40),
       k=st.integers(1, 30), rrf_k=st.sampled_from([0.0, 60.0]), pad=st.floats(0.0, 1.0))
def test_merge_equals_the_reference_merge(seed: int, n_rows: int, n_src: int, n_items: int, k: int, rrf_k: float,
                                          pad: float) -> None:
    """Random lists with padding anywhere, repeats within a source, ties, quotas, weights, empty batches."""
    rng = np.random.default_rng(seed)
    cands = []
    for s in range(n_src):
        width = int(rng.integers(1, 15))
        ids = rng.integers(0, n_items, (n_rows, width))
        ids[rng.random((n_rows, width)) < pad] = PAD_ITEM
        scores = rng.integers(0, 3, (n_rows, width)).astype(np.float32 if s % 2 else np.float64)
        cands.append(Candidates(ids, np.where(ids < 0, -np.inf, scores), f"s{s}"))
    cfg = MergeConfig(k=k, rrf_k=rrf_k, quotas={f"s{s}": int(rng.integers(0, 4)) for s in range(n_src)},
                      weights={f"s{s}": float(rng.choice([0.5, 1.0, 2.0])) for s in range(n_src)})
    got, want = merge_candidates(cands, cfg), _reference_merge(cands, cfg)
    assert got.sources == want.sources
    for field in ("item_ids", "scores", "source_scores", "source_ranks"):
        assert getattr(got, field).dtype == getattr(want, field).dtype, field
        np.testing.assert_array_equal(getattr(got, field), getattr(want, field), err_msg=field)


def test_merge_of_huge_item_ids_takes_the_argsort_path() -> None:
    """Ids so large that (user, item, column) keys would overflow int64 still merge like the reference."""
    big = 1 << 60
    a = Candidates(np.array([[big, 3, -1], [5, big, 3]]), np.array([[3.0, 2.0, -np.inf], [3.0, 2.0, 1.0]]), "a")
    b = Candidates(np.array([[3, big + 1], [big, 7]]), np.array([[2.0, 1.0], [2.0, 1.0]], np.float32), "b")
    cfg = MergeConfig(k=4, quotas={"b": 1})
    got, want = merge_candidates([a, b], cfg), _reference_merge([a, b], cfg)
    for field in ("item_ids", "scores", "source_scores", "source_ranks"):
        np.testing.assert_array_equal(getattr(got, field), getattr(want, field), err_msg=field)
