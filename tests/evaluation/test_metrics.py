"""Ranking metrics: hand-computed values, invariants (hypothesis) and a cross-check with scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import ndcg_score

from rankstack.evaluation.metrics import (
    average_precision_at_k,
    coverage_at_k,
    hit_rate_at_k,
    hits_matrix,
    intra_list_diversity_at_k,
    item_popularity,
    mrr_at_k,
    ndcg_at_k,
    novelty_at_k,
    precision_at_k,
    recall_at_k,
    summarize,
)

L3 = 1 / math.log2(3)  # discount of position 2
ALL = {
    "recall": recall_at_k,
    "precision": precision_at_k,
    "hr": hit_rate_at_k,
    "ndcg": ndcg_at_k,
    "mrr": mrr_at_k,
    "map": average_precision_at_k,
}


def csr(rows: list[list[int]], n_items: int) -> sp.csr_matrix:
    """Binary CSR with one row per list of item ids."""
    r = [u for u, items in enumerate(rows) for _ in items]
    c = [i for items in rows for i in items]
    return sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(len(rows), n_items))


# user 0: list [1, 5, 2, 7] vs test {2, 5, 6}; user 1: no recommendations; user 2: no test items
RECS = np.array([[1, 5, 2, 7], [-1, -1, -1, -1], [0, 1, 2, 3]])
TRUTH = csr([[2, 5, 6], [0], []], n_items=8)
N_REL = np.array([3, 1, 0])


def test_hits_matrix_marks_test_items_and_ignores_padding() -> None:
    hits = hits_matrix(RECS, TRUTH)
    assert hits.tolist() == [[False, True, True, False], [False] * 4, [False] * 4]


def test_hits_matrix_counts_a_repeated_item_once_and_rejects_bad_ids() -> None:
    assert hits_matrix(np.array([[2, 2, 5]]), csr([[2, 5]], 8)).tolist() == [[True, False, True]]
    with pytest.raises(ValueError, match="outside"):
        hits_matrix(np.array([[8]]), csr([[1]], 8))


@pytest.mark.parametrize(
    ("name", "k", "expected"),
    [
        ("recall", 4, 2 / 3),
        ("recall", 2, 1 / 3),
        ("precision", 4, 2 / 4),
        ("precision", 2, 1 / 2),
        ("hr", 1, 0.0),
        ("hr", 2, 1.0),
        ("ndcg", 4, (L3 + 0.5) / (1 + L3 + 0.5)),
        ("ndcg", 2, L3 / (1 + L3)),
        ("mrr", 4, 1 / 2),
        ("mrr", 1, 0.0),
        ("map", 4, (1 / 2 + 2 / 3) / 3),
        ("map", 2, (1 / 2) / 2),
    ],
)
def test_hand_computed_values(name: str, k: int, expected: float) -> None:
    values = ALL[name](hits_matrix(RECS, TRUTH), N_REL, k)
    assert values[0] == pytest.approx(expected)
    assert values[1] == 0.0  # test items but no recommendations
    assert values[2] == 0.0  # no test items


def test_k_beyond_list_length_treats_missing_slots_as_misses() -> None:
    hits = hits_matrix(RECS, TRUTH)
    assert precision_at_k(hits, N_REL, 8)[0] == pytest.approx(2 / 8)
    assert ndcg_at_k(hits, N_REL, 8)[0] == pytest.approx((L3 + 0.5) / (1 + L3 + 0.5))


def test_coverage_counts_distinct_items_over_train_items() -> None:
    assert coverage_at_k(RECS, 2, n_train_items=6) == pytest.approx(len({1, 5, 0}) / 6)
    assert coverage_at_k(RECS, 4, n_train_items=8) == pytest.approx(len({0, 1, 2, 3, 5, 7}) / 8)


def test_item_popularity_and_novelty() -> None:
    train = csr([[0, 1], [0], [], [0, 2]], n_items=4)  # 3 train users; item 3 never seen
    prob = item_popularity(train)
    assert prob.tolist() == pytest.approx([1.0, 1 / 3, 1 / 3, 1 / 4])
    recs = np.array([[1, 3, -1], [-1, -1, -1], [0, 2, 3]])
    nov = novelty_at_k(recs, prob, 3)
    assert nov[0] == pytest.approx((math.log2(3) + 2) / 2)
    assert nov[1] == 0.0
    assert nov[2] == pytest.approx((0 + math.log2(3) + 2) / 3)
    assert novelty_at_k(recs, prob, 1)[2] == 0.0


def test_intra_list_diversity_hand_computed_and_brute_force() -> None:
    vecs = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0], [0.0, 0.0]])
    ild = intra_list_diversity_at_k(np.array([[0, 1, 2], [0, -1, -1], [0, 0, -1]]), vecs, 3)
    c = 1 / math.sqrt(2)
    assert ild.tolist() == pytest.approx([(1 + (1 - c) + (1 - c)) / 3, 0.0, 0.0])
    rng = np.random.default_rng(3)
    vecs = rng.standard_normal((20, 5))
    recs = np.stack([rng.permutation(20)[:6] for _ in range(7)])
    recs[2, 4:] = -1
    unit = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    for u, row in enumerate(recs):
        items = row[row >= 0]
        pairs = [(a, b) for i, a in enumerate(items) for b in items[i + 1 :]]
        expected = np.mean([1 - unit[a] @ unit[b] for a, b in pairs])
        assert intra_list_diversity_at_k(recs, vecs, 6, chunk=3)[u] == pytest.approx(expected)


def test_summarize_means_over_users_with_test_items() -> None:
    train = csr([[0], [3], [4]], n_items=8)
    out = summarize(RECS, TRUTH, [2, 4], train=train, item_vectors=np.eye(8))
    assert out["users_evaluated"] == 2
    assert out["recall@4"] == pytest.approx((2 / 3) / 2)
    assert out["ndcg@2"] == pytest.approx(L3 / (1 + L3) / 2)
    assert out["coverage@2"] == pytest.approx(2 / 3)  # {1, 5} of 3 train items; user 2 is not evaluated
    assert out["ild@4"] == pytest.approx(1 / 2)  # orthogonal items: 1 for user 0, 0 for the empty list
    assert {"hr@2", "mrr@2", "precision@2", "map@2", "novelty@2", "ild@2"} <= out.keys()
    assert "novelty@2" not in summarize(RECS, TRUTH, [2])


@st.composite
def ranking_case(draw: st.DrawFn) -> tuple[np.ndarray, sp.csr_matrix]:
    """Random recs (unique items per row, -1 padded) and test sets over a small catalogue."""
    n_items = draw(st.integers(1, 12))
    n_users = draw(st.integers(1, 5))
    width = draw(st.integers(1, 12))
    item = st.integers(0, n_items - 1)
    recs = np.full((n_users, width), -1)
    truth = []
    for u in range(n_users):
        row = draw(st.lists(item, unique=True, max_size=min(width, n_items)))
        recs[u, : len(row)] = row
        truth.append(sorted(draw(st.sets(item, max_size=n_items))))
    return recs, csr(truth, n_items)


@settings(max_examples=150, deadline=None)
@given(ranking_case())
def test_invariants(case: tuple[np.ndarray, sp.csr_matrix]) -> None:
    recs, truth = case
    hits = hits_matrix(recs, truth)
    n_rel = np.diff(truth.indptr)
    previous: dict[str, np.ndarray] = {}
    for k in range(1, recs.shape[1] + 2):
        values = {name: fn(hits, n_rel, k) for name, fn in ALL.items()}
        for name, v in values.items():
            assert np.all((v >= -1e-12) & (v <= 1 + 1e-12)), name
            assert np.all(v[n_rel == 0] == 0), name
        assert np.allclose(values["precision"] * k, values["recall"] * n_rel)
        assert np.all(values["mrr"] <= values["hr"]) and np.all(values["map"] <= values["hr"])
        for name in ("recall", "hr", "mrr"):
            if name in previous:
                assert np.all(values[name] >= previous[name] - 1e-12), name
        previous = values


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sets(st.integers(0, 14), min_size=1), min_size=1, max_size=5), st.integers(1, 10))
def test_perfect_lists_score_one(tests: list[set[int]], k: int) -> None:
    recs = np.full((len(tests), 15), -1)
    for u, items in enumerate(tests):
        recs[u, : len(items)] = sorted(items)
    truth = csr([sorted(t) for t in tests], 15)
    hits, n_rel = hits_matrix(recs, truth), np.diff(truth.indptr)
    assert np.allclose(ndcg_at_k(hits, n_rel, k), 1.0)
    assert np.allclose(average_precision_at_k(hits, n_rel, k), 1.0)
    assert np.allclose(mrr_at_k(hits, n_rel, k), 1.0)
    assert np.allclose(recall_at_k(hits, n_rel, k), np.minimum(n_rel, k) / n_rel)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 10))
def test_ndcg_matches_sklearn_with_binary_relevance(seed: int, k: int) -> None:
    """sklearn's NDCG@k also truncates the ideal ranking at k, so with full top-k lists the two agree.

    Lists hold exactly ``k`` distinct items scored above every other item, so sklearn's tie handling
    among the unranked items never reaches the top k.
    """
    rng = np.random.default_rng(seed)
    n_users, n_items = 6, 15
    relevance = (rng.random((n_users, n_items)) < 0.3).astype(float)
    relevance[relevance.sum(axis=1) == 0, 0] = 1.0  # every user has a test item
    recs = np.stack([rng.permutation(n_items)[:k] for _ in range(n_users)])
    scores = np.zeros((n_users, n_items))
    np.put_along_axis(scores, recs, np.arange(k, 0, -1, dtype=float)[None, :], axis=1)
    truth = sp.csr_matrix(relevance)
    ours = ndcg_at_k(hits_matrix(recs, truth), np.diff(truth.indptr), k)
    for u in range(n_users):
        assert ours[u] == pytest.approx(ndcg_score(relevance[u : u + 1], scores[u : u + 1], k=k))
