"""The one-category MMR path against the general (matmul) MMR it replaces on the serving path."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rankstack.candidates import Candidates, normalize_relevance
from rankstack.reranking import ItemSimilarity, MMRConfig
from rankstack.reranking import mmr as mmr_module
from rankstack.reranking.diversity import DiversityReranker
from rankstack.reranking.mmr import MMR, categorical_mmr
from rankstack.reranking.similarity import one_hot_codes


class GeneralMMR(MMR):
    """MMR that always takes the general path (the reference)."""

    def select_rows(self, ids: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
        """The general path of :class:`DiversityReranker`."""
        return DiversityReranker.select_rows(self, ids, scores, k)


def _similarity(rng: np.random.Generator, n_items: int, n_categories: int) -> ItemSimilarity:
    """Single-category items, about one in six without a category."""
    cats = [None if rng.random() < 0.15 else f"c{rng.integers(n_categories)}" for _ in range(n_items)]
    return ItemSimilarity.from_categories(cats)


def test_one_hot_codes_accepts_only_zero_or_unit_one_hot_rows() -> None:
    codes = one_hot_codes(np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]))
    assert codes is not None and list(codes) == [1, -1, 0]
    assert one_hot_codes(np.array([[0.0, -1.0], [1.0, 0.0]])) is None
    assert one_hot_codes(np.array([[2**-0.5, 2**-0.5], [1.0, 0.0]])) is None
    assert one_hot_codes(np.array([[0.5, 0.0]])) is None
    empty = one_hot_codes(np.zeros((3, 0)))
    assert empty is not None and list(empty) == [-1, -1, -1]


def test_similarity_exposes_codes_only_for_single_categories() -> None:
    single = ItemSimilarity.from_categories(["a", None, "b", "a"])
    codes = single.gather_categories(np.array([[3, -1, 1, 2]]))
    assert codes is not None and codes.tolist() == [[0, -1, -1, 1]]
    assert ItemSimilarity(np.array([[0.0, 3.0], [1.0, 0.0]])).categories_ is not None  # scaled one-hot embeddings
    assert ItemSimilarity.from_categories([["a", "b"], "a"]).gather_categories(np.array([0, 1])) is None
    with pytest.raises(ValueError, match="outside"):
        single.gather_categories(np.array([4]))


def test_hand_worked_case_prefers_a_new_category() -> None:
    sim = ItemSimilarity.from_categories(["a", "a", "b", None])
    cands = Candidates(np.array([[0, 1, 2, 3]]), np.array([[1.0, 0.9, 0.5, 0.0]]), "x")
    # λ = 0.5: after item 0, item 1 gains 0.5·0.9 − 0.5 < 0.5·0.5 (item 2) and < 0 (item 3, no category)
    got = MMR(sim, MMRConfig(relevance_weight=0.5)).rerank(cands, 4)
    assert got.item_ids[0].tolist() == [0, 2, 3, 1]


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 100_000),
    rows=st.integers(1, 5),
    n=st.integers(1, 40),
    k=st.integers(1, 45),
    n_categories=st.integers(1, 8),
    weight=st.one_of(st.sampled_from([0.0, 0.5, 0.8, 1.0]), st.floats(0.0, 1.0)),
    relevance=st.sampled_from(["minmax", "none"]),
    tied=st.booleans(),
    scale=st.sampled_from([1.0, 1e300]),  # with relevance "none", λ·r overflows float32 to ±inf
)
def test_rerank_matches_the_general_path(seed: int, rows: int, n: int, k: int, n_categories: int, weight: float,
                                         relevance: str, tied: bool, scale: float) -> None:
    rng = np.random.default_rng(seed)
    sim = _similarity(rng, 60, n_categories)
    ids = np.array([rng.choice(60, size=n, replace=False) for _ in range(rows)])
    ids = np.where(rng.random(ids.shape) < 0.25, -1, ids)  # padded ids, rows with fewer valid items than k
    scores = rng.integers(0, 3, ids.shape).astype(np.float64) if tied else rng.standard_normal(ids.shape)
    scores = scores * scale
    config = MMRConfig(relevance_weight=weight, relevance=relevance)  # type: ignore[arg-type]
    cands = Candidates(ids, scores, "x")
    ref = GeneralMMR(sim, config).rerank(cands, k)
    for sort_max_rows in (0, 100):  # the batched greedy steps, then the sorts
        with _sort_max_rows(sort_max_rows):
            fast = MMR(sim, config).rerank(cands, k)
        np.testing.assert_array_equal(fast.item_ids, ref.item_ids)
        np.testing.assert_array_equal(fast.scores, ref.scores)


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 100_000), rows=st.integers(1, 6), n=st.integers(1, 60), k=st.integers(1, 70),
       weight=st.sampled_from([0.0, 0.3, 0.8, 0.999]), tied=st.booleans())
def test_select_matches_the_general_select(seed: int, rows: int, n: int, k: int, weight: float, tied: bool) -> None:
    rng = np.random.default_rng(seed)
    sim = _similarity(rng, 200, 6)
    ids = rng.integers(-1, 200, (rows, n))
    scores = np.round(rng.random(ids.shape), 1) if tied else rng.random(ids.shape)
    valid = ids >= 0
    relevance = normalize_relevance(ids, scores, "minmax")
    mmr = MMR(sim, MMRConfig(relevance_weight=weight))
    vecs, residual = sim.gather(ids)
    codes = sim.gather_categories(ids)
    assert codes is not None
    expected = mmr.select(vecs, residual, relevance, valid, k)
    for sort_max_rows in (0, 100):  # the batched greedy steps, then the sorts
        with _sort_max_rows(sort_max_rows):
            np.testing.assert_array_equal(categorical_mmr(codes, relevance, valid, k, weight), expected)


@contextmanager
def _sort_max_rows(value: int) -> Iterator[None]:
    """Route categorical MMR to the sorts up to ``value`` rows, to the batched greedy steps above."""
    saved = mmr_module.SORT_MAX_ROWS
    mmr_module.SORT_MAX_ROWS = value
    try:
        yield
    finally:
        mmr_module.SORT_MAX_ROWS = saved


def test_multi_category_similarity_keeps_the_general_path() -> None:
    sim = ItemSimilarity.from_categories([["a", "b"], "a", "b", None, ["a", "c"]])
    cands = Candidates(np.array([[0, 1, 2, 3, 4]]), np.array([[0.9, 0.8, 0.7, 0.1, 0.6]]), "x")
    config = MMRConfig(relevance_weight=0.6)
    got = MMR(sim, config).rerank(cands, 5)
    np.testing.assert_array_equal(got.item_ids, GeneralMMR(sim, config).rerank(cands, 5).item_ids)
