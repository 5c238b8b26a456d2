"""Retrieve → rank: the ranker only orders merged candidates; with every item retrieved it equals full ranking."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
import pytest
import torch

from rankstack.data.dataset import Dataset
from rankstack.pipeline.components import build_source
from rankstack.ranking.two_stage import TwoStageRecommender
from rankstack.retrieval.popular import MostPopular


def small_dataset(n_users: int = 30, n_items: int = 25, seed: int = 0) -> Dataset:
    """Random user–item interactions (every user and item appears)."""
    rng = np.random.default_rng(seed)
    mask = rng.random((n_users, n_items)) < 0.2
    mask[np.arange(n_users), np.arange(n_users) % n_items] = True
    mask[np.arange(n_items) % n_users, np.arange(n_items)] = True
    users, items = np.nonzero(mask)
    return Dataset.from_events(pl.DataFrame({"user_id": users, "item_id": items}), name="small")


class ScoreByItemId:
    """A ranker that prefers higher item ids: score = item id (−inf for padding)."""

    def score_candidates(self, histories: Sequence[np.ndarray], candidates: np.ndarray) -> torch.Tensor:
        scores = torch.as_tensor(candidates, dtype=torch.float32)
        return scores.masked_fill(torch.as_tensor(candidates) < 0, float("-inf"))


def test_ranker_orders_only_the_merged_candidates() -> None:
    data = small_dataset()
    sources = [MostPopular().fit(data), build_source("itemknn").fit(data)]
    users = np.arange(data.n_users)
    out = TwoStageRecommender(sources, ScoreByItemId(), n_candidates=8).recommend(users, [np.zeros(0)] * len(users), 5)
    assert out.recs.shape == (len(users), 5)
    for row, cands in zip(out.recs, out.candidates.item_ids, strict=True):
        kept = row[row >= 0]
        assert set(kept) <= set(cands[cands >= 0])
        assert list(kept) == sorted(cands[cands >= 0], reverse=True)[: len(kept)]
    assert out.retrieval_s >= 0 and out.ranking_s >= 0


def test_all_items_as_candidates_equals_full_ranking() -> None:
    data = small_dataset()
    seen = data.interaction_matrix()
    users = np.arange(data.n_users)
    out = TwoStageRecommender([MostPopular().fit(data)], ScoreByItemId(), n_candidates=data.n_items).recommend(
        users, [np.zeros(0)] * len(users), 3)
    for u in users:
        unseen = np.setdiff1d(np.arange(data.n_items), seen[u].indices)
        assert list(out.recs[u][out.recs[u] >= 0]) == list(np.sort(unseen)[::-1][:3])


def test_torch_merge_batched_ranking_and_prefix_lists_agree() -> None:
    data = small_dataset()
    sources = [MostPopular().fit(data), build_source("itemknn").fit(data)]
    users = np.arange(data.n_users)
    hist = [np.zeros(0)] * len(users)
    want = TwoStageRecommender(sources, ScoreByItemId(), n_candidates=8).recommend(users, hist, 5)
    stage = TwoStageRecommender(sources, ScoreByItemId(), n_candidates=8, device="cpu")
    got = stage.recommend(users, hist, 5, batch_size=7)
    np.testing.assert_array_equal(got.recs, want.recs)
    np.testing.assert_array_equal(got.candidates.item_ids, want.candidates.item_ids)
    longer = stage.merge([s.retrieve(users, 20) for s in sources], batch_size=4)  # top-20 lists cut to 8
    np.testing.assert_array_equal(longer.item_ids, want.candidates.item_ids)
    np.testing.assert_array_equal(longer.source_ranks, want.candidates.source_ranks)


@pytest.mark.parametrize("n", [0, -5])
def test_bad_candidate_counts_are_refused(n: int) -> None:
    with pytest.raises(ValueError, match="n_candidates"):
        TwoStageRecommender([MostPopular()], ScoreByItemId(), n_candidates=n)


def test_needs_a_source() -> None:
    with pytest.raises(ValueError, match="at least one"):
        TwoStageRecommender([], ScoreByItemId(), n_candidates=10)
