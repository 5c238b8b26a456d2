"""Each conformance suite fails a component that breaks its contract (a suite that passes everything proves
nothing)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from rankstack.candidates import Candidates
from rankstack.data.dataset import Dataset
from rankstack.index import ExactIndex
from rankstack.reranking.reranker import RerankContext
from rankstack.retrieval.popular import MostPopular
from rankstack.testing.indexes import check_vector_index
from rankstack.testing.rankers import check_ranker
from rankstack.testing.rerankers import check_reranker
from rankstack.testing.sources import check_candidate_source


def _dataset() -> Dataset:
    rng = np.random.default_rng(0)
    users, items = np.nonzero(rng.random((20, 15)) < 0.3)
    return Dataset.from_events(pl.DataFrame({"user_id": users, "item_id": items}), name="faults")


class _ShowsSeenItems(MostPopular):
    name = "popular"

    def retrieve(self, user_ids: np.ndarray, k: int, *, exclude_seen: bool = True) -> Candidates:
        return super().retrieve(user_ids, k, exclude_seen=False)


class _WorstFirst(ExactIndex):
    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores, ids = super()._search(queries, k)
        return scores[:, ::-1], ids[:, ::-1]


class _InventsItems:
    def rerank(self, candidates: Candidates, k: int, context: RerankContext) -> Candidates:
        rows = candidates.item_ids.shape[0]
        return Candidates(np.tile(np.arange(k), (rows, 1)), np.zeros((rows, k)), "x")


def test_a_popular_source_that_shows_seen_items_fails() -> None:
    check_candidate_source(MostPopular, _dataset())
    with pytest.raises(AssertionError, match="retrieved training items"):
        check_candidate_source(_ShowsSeenItems, _dataset())


def test_an_index_that_returns_its_top_k_worst_first_fails() -> None:
    check_vector_index(ExactIndex)
    with pytest.raises(AssertionError, match="not in descending order"):
        check_vector_index(_WorstFirst)


def test_a_reranker_that_invents_items_fails() -> None:
    with pytest.raises(AssertionError, match="were not among its candidates"):
        check_reranker(_InventsItems())


def test_rankers_with_wrong_shapes_or_batch_dependent_scores_fail() -> None:
    users, items = np.array([0, 1]), np.array([[1, 2, 3], [4, -1, 5]])
    with pytest.raises(AssertionError, match="has shape"):
        check_ranker(lambda u, i: {"click": np.zeros((len(u), 2))}, users, items)
    with pytest.raises(AssertionError, match="alone"):
        check_ranker(lambda u, i: {"score": np.full(i.shape, float(len(u)))}, users, items)
