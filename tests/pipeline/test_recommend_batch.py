"""``Pipeline.recommend_batch``: internal ids in, arrays out, the slates ``recommend`` serves behind the id boundary."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from rankstack.data.dataset import Dataset
from rankstack.pipeline.api import RecommendRequest
from rankstack.pipeline.pipeline import Pipeline

from .conftest import build
from .test_recommend import FakeState

RULES = {"rules": [{"name": "cap", "type": "cap", "attribute": "category", "max_per_slate": 2},
                   {"name": "fcap", "type": "frequency_cap", "max_count": 1, "window_days": 1}]}


def users_and_requests(fit: Dataset, ks: list[int]) -> tuple[np.ndarray, list[RecommendRequest]]:
    """Internal ids of the first len(ks) users, and the matching requests (request id ``r-<user>``)."""
    users = np.arange(len(ks), dtype=np.int64)
    external = [str(u) for u in fit.user_map.to_external(users).to_list()]
    return users, [RecommendRequest(user_id=u, k=k, request_id=f"r-{u}") for u, k in zip(external, ks, strict=True)]


@pytest.mark.parametrize("overrides", [
    {"exploration": {"policy": "epsilon_greedy", "epsilon": 0.5, "pool": 10}},
    {"exploration": {"policy": "softmax", "temperature": 0.5, "pool": 12}, "ranker": {"source": "fakeseq"}},
    {"exploration": {"policy": "greedy"}, "rerank": RULES, "ranker": {"source": "fakeseq"}},
])
def test_batch_form_gives_the_slates_recommend_serves(small_split: tuple[Dataset, Dataset],
                                                      overrides: dict[str, Any]) -> None:
    fit, _ = small_split
    pipe = build(fit, **overrides)
    users, requests = users_and_requests(fit, [3, 5, 1, 8, 5, 4])
    external = [r.user_id for r in requests]
    state = FakeState(recent={external[1]: ["i39", "i38"]}, exposures={external[3]: {"i0": 3, "i4": 1}})
    responses = pipe.recommend(requests, state, stage_deadlines=False)
    slates = pipe.recommend_batch(users, np.array([r.k for r in requests]), state,
                                  request_ids=[r.request_id or "" for r in requests], stage_deadlines=False)
    assert slates.item_ids.shape == (6, 8) and slates.lengths.tolist() == [len(r.items) for r in responses]
    for row, response in enumerate(responses):
        n = int(slates.lengths[row])
        served = fit.item_map.to_internal([i.item_id for i in response.items])
        assert slates.item_ids[row, :n].tolist() == served.tolist()
        assert (slates.item_ids[row, n:] == -1).all()
        assert slates.scores[row, :n].tolist() == pytest.approx([i.score for i in response.items])
        if slates.propensities is None:
            assert all(i.propensity is None for i in response.items)
        else:
            assert slates.propensities[row, :n].tolist() == [i.propensity for i in response.items]
        assert slates.stages[row] == response.stages and slates.fallback[row] == response.fallback
        assert slates.request_ids[row] == response.request_id
    assert set(slates.stage_ms) >= {"prepare", "retrieval", "ranker", "exploration", "total"}


def test_one_k_for_every_user_and_no_users(small_split: tuple[Dataset, Dataset]) -> None:
    pipe = build(small_split[0])
    slates = pipe.recommend_batch(np.array([0, 1, 2]), 4)
    assert slates.item_ids.shape == (3, 4) and slates.lengths.tolist() == [4, 4, 4]
    assert len(set(slates.request_ids)) == 3 and slates.propensities is None
    empty = pipe.recommend_batch(np.zeros(0, np.int64), 4)
    assert empty.item_ids.shape[0] == 0 and empty.request_ids == []


@pytest.mark.parametrize(("users", "ks", "field"), [
    (np.array([0, -1]), 3, "user_ids"), (np.array([0, 10_000]), 3, "user_ids"),
    (np.array([0, 1]), np.array([3]), "ks"), (np.array([0, 1]), 0, "ks"),
])
def test_bad_batches_name_the_field(small_split: tuple[Dataset, Dataset], users: np.ndarray, ks: Any,
                                    field: str) -> None:
    pipe: Pipeline = build(small_split[0])
    with pytest.raises(ValueError, match=field):
        pipe.recommend_batch(users, ks)
