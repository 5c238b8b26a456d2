"""MMR and greedy DPP against brute force, hand-worked cases and invariants."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rankstack.candidates import Candidates, normalize_relevance
from rankstack.reranking import DPP, MMR, DPPConfig, ItemSimilarity, MMRConfig, dpp_log_det
from rankstack.reranking.dpp import quality_exponent
from rankstack.testing.rerankers import check_reranker, check_slates


def _cands(ids: list[list[int]], scores: list[list[float]]) -> Candidates:
    return Candidates(np.asarray(ids, dtype=np.int64), np.asarray(scores, dtype=np.float64), "test")


def _best_subset(sim: np.ndarray, rel: np.ndarray, k: int, theta: float, jitter: float) -> float:
    return max(dpp_log_det(sim, rel, np.array(y), theta, jitter) for y in itertools.combinations(range(len(rel)), k))


def test_similarity_is_cosine_with_unit_diagonal_and_psd() -> None:
    vecs = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0], [0.0, 3.0]])
    s = ItemSimilarity(vecs).matrix(np.arange(4))
    expected = np.array([[1, 2**-0.5, 0, 0], [2**-0.5, 1, 0, 2**-0.5], [0, 0, 1, 0], [0, 2**-0.5, 0, 1]])
    np.testing.assert_allclose(s, expected, atol=1e-12)
    assert np.linalg.eigvalsh(s).min() > -1e-12


def test_category_similarity_from_genre_lists() -> None:
    sim = ItemSimilarity.from_categories([["a", "b"], ["a"], "c", None])
    s = sim.matrix(np.arange(4))
    assert s[0, 1] == pytest.approx(2**-0.5)
    assert s[0, 2] == 0.0 and s[3, 3] == 1.0 and s[2, 3] == 0.0


def test_dpp_k1_is_the_most_relevant_item() -> None:
    rng = np.random.default_rng(0)
    sim = ItemSimilarity(rng.standard_normal((12, 4)))
    scores = rng.random((3, 12))
    ids = np.tile(np.arange(12), (3, 1))
    got = DPP(sim, DPPConfig(relevance_weight=0.5)).rerank(Candidates(ids, scores, "x"), 1)
    np.testing.assert_array_equal(got.item_ids[:, 0], scores.argmax(axis=1))


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_dpp_greedy_is_exact_on_a_diagonal_kernel(k: int) -> None:
    rng = np.random.default_rng(k)
    rel_scores = rng.random(7)
    sim = ItemSimilarity(np.eye(7))
    got = DPP(sim, DPPConfig(relevance_weight=0.6, jitter=0.0)).rerank(_cands([list(range(7))], [list(rel_scores)]), k)
    rel = normalize_relevance(np.arange(7)[None], rel_scores[None], "minmax")[0]
    value = dpp_log_det(np.eye(7), rel, got.item_ids[0], 0.6)
    assert value == pytest.approx(_best_subset(np.eye(7), rel, k, 0.6, 0.0))
    assert set(got.item_ids[0]) == set(np.argsort(-rel_scores)[:k])


def test_dpp_greedy_is_exact_on_clusters_of_duplicates() -> None:
    # three clusters of identical items: the best set takes the best item of each distinct cluster
    vecs = np.repeat(np.eye(3), [3, 2, 2], axis=0)
    scores = np.array([0.9, 0.8, 0.7, 0.5, 0.4, 0.3, 0.1])
    sim = ItemSimilarity(vecs)
    got = DPP(sim, DPPConfig(relevance_weight=0.5, jitter=1e-6)).rerank(_cands([list(range(7))], [list(scores)]), 3)
    assert list(got.item_ids[0]) == [0, 3, 5]
    rel = normalize_relevance(np.arange(7)[None], scores[None], "minmax")[0]
    s = sim.matrix(np.arange(7))
    assert dpp_log_det(s, rel, got.item_ids[0], 0.5, 1e-6) == pytest.approx(_best_subset(s, rel, 3, 0.5, 1e-6))


def test_dpp_gains_match_slogdet_step_by_step() -> None:
    rng = np.random.default_rng(3)
    n, k, theta, eps = 30, 8, 0.7, 1e-3
    sim = ItemSimilarity(rng.standard_normal((n, 5)))
    scores = rng.random(n)
    picks = DPP(sim, DPPConfig(relevance_weight=theta, jitter=eps)).rerank(
        _cands([list(range(n))], [list(scores)]), k).item_ids[0]
    rel = normalize_relevance(np.arange(n)[None], scores[None], "minmax")[0]
    s = sim.matrix(np.arange(n))
    for t in range(1, k + 1):
        chosen = dpp_log_det(s, rel, picks[:t], theta, eps)
        # greedy: no other single addition to the first t-1 picks gives a larger log det
        others = [dpp_log_det(s, rel, np.append(picks[: t - 1], j), theta, eps) for j in range(n) if j not in picks[:t]]
        assert chosen >= max(others) - 1e-9
    full = np.linalg.slogdet(np.diag(np.exp(quality_exponent(theta) * rel[picks])) @ (s[np.ix_(picks, picks)]
                             + eps * np.eye(k)) @ np.diag(np.exp(quality_exponent(theta) * rel[picks])))
    assert full[0] > 0 and full[1] == pytest.approx(dpp_log_det(s, rel, picks, theta, eps))


def test_dpp_fills_by_relevance_when_the_kernel_runs_out_of_rank() -> None:
    vecs = np.array([[1.0, 0.0]] * 3 + [[0.0, 1.0]] * 2)
    got = DPP(ItemSimilarity(vecs), DPPConfig(relevance_weight=0.5, jitter=0.0)).rerank(
        _cands([[0, 1, 2, 3, 4]], [[5.0, 4.0, 3.0, 2.0, 1.0]]), 4)
    assert list(got.item_ids[0]) == [0, 3, 1, 2]


def test_mmr_extremes_and_a_hand_worked_case() -> None:
    vecs = np.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0]])
    cands = _cands([[0, 1, 2]], [[1.0, 0.9, 0.0]])
    sim = ItemSimilarity(vecs)
    assert list(MMR(sim, MMRConfig(relevance_weight=1.0)).rerank(cands, 3).item_ids[0]) == [0, 1, 2]
    # λ = 0.5: after item 0, item 1 scores 0.5·0.9 − 0.5·0.995 < 0 = 0.5·0 − 0.5·0 for item 2
    assert list(MMR(sim, MMRConfig(relevance_weight=0.5)).rerank(cands, 3).item_ids[0]) == [0, 2, 1]


@pytest.mark.parametrize("make", [lambda s: MMR(s, MMRConfig(relevance_weight=0.3)),
                                  lambda s: DPP(s, DPPConfig(relevance_weight=0.3))])
def test_diversity_rerankers_pass_the_conformance_suite(make) -> None:  # type: ignore[no-untyped-def]
    """Padding, an empty row, batches equal to single rows, determinism (the library's suite)."""
    check_reranker(make(ItemSimilarity(np.random.default_rng(5).standard_normal((40, 6)))))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(1, 12), theta=st.floats(0.0, 1.0), method=st.sampled_from("md"))
def test_picks_are_distinct_candidates(seed: int, k: int, theta: float, method: str) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 15))
    ids = rng.choice(50, size=(2, n), replace=True)
    ids = np.where(rng.random((2, n)) < 0.2, -1, ids)
    sim = ItemSimilarity(rng.standard_normal((50, 3)))
    ranker = (MMR(sim, MMRConfig(relevance_weight=theta)) if method == "m"
              else DPP(sim, DPPConfig(relevance_weight=theta)))
    uniq = np.array([np.where(_first(r), r, -1) for r in ids])
    got = ranker.rerank(Candidates(uniq, rng.random((2, n)), "x"), k)
    check_slates(Candidates(uniq, rng.random((2, n)), "x"), got, k)


def _first(row: np.ndarray) -> np.ndarray:
    seen: set[int] = set()
    keep = []
    for x in row.tolist():
        keep.append(x not in seen)
        seen.add(x)
    return np.array(keep)
