"""Batch inference on a local Ray instance (2 CPUs): embeddings, top-k lists and an index equal to one process's."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import pytest

from rankstack.data.dataset import Dataset
from rankstack.distributed.backend import Backend
from rankstack.errors import ConfigError
from rankstack.index.exact import ExactIndex
from rankstack.pipeline.components import build_source
from rankstack.retrieval.source import CandidateSource

pytestmark = pytest.mark.ray
RAY2 = Backend("ray", 2)


@pytest.fixture(scope="module")
def als() -> CandidateSource:
    rng = np.random.default_rng(3)
    rows = [(f"u{u}", f"i{i}") for u in range(70) for i in rng.choice(30, size=6, replace=False)]
    data = Dataset.from_events(pl.DataFrame(rows, schema=["user_id", "item_id"], orient="row"), name="tiny")
    return build_source("als", {"factors": 8, "iterations": 3, "num_threads": 1}).fit(data)


def test_user_and_item_embeddings_gather_in_order(ray_instance: Any, als: CandidateSource) -> None:
    from rankstack.distributed.inference import embed_items, embed_users

    users = np.array([69, 0, 5, 5, 12, 40, 33, 1, 68], dtype=np.int64)  # any order, repeats kept
    gathered = embed_users(als, users, RAY2, per_task=2)  # five shards of ≤ 2 users over 2 workers
    assert gathered.dtype == np.float32
    np.testing.assert_array_equal(gathered, als.user_vectors(users).numpy())
    np.testing.assert_array_equal(embed_items(als, RAY2), als.item_vectors().numpy())


def test_sharded_recommendations_equal_retrieve(ray_instance: Any, als: CandidateSource) -> None:
    from rankstack.distributed.inference import recommend_sharded

    users = np.arange(70, dtype=np.int64)
    local = als.retrieve(users, 7)
    sharded = recommend_sharded(als, users, 7, RAY2, per_task=16)
    np.testing.assert_array_equal(sharded.item_ids, local.item_ids)
    np.testing.assert_array_equal(sharded.scores, local.scores)
    assert sharded.source == "als"


def test_an_index_built_from_gathered_embeddings_searches_like_a_local_one(ray_instance: Any,
                                                                           als: CandidateSource) -> None:
    from rankstack.distributed.inference import build_index, embed_users

    index = build_index(als, ExactIndex(), RAY2)
    local = ExactIndex().build(als.item_vectors().numpy())
    queries = embed_users(als, np.arange(10), RAY2)
    for got, want in zip(index.search(queries, 5), local.search(queries, 5), strict=True):
        np.testing.assert_array_equal(got, want)
    assert index.ntotal == 30


def test_a_source_without_vectors_cannot_be_embedded(als: CandidateSource) -> None:
    from rankstack.distributed.inference import embed_users

    popular = build_source("popular", {})
    with pytest.raises(ConfigError, match="no user/item vectors"):
        embed_users(popular, np.arange(3), RAY2)
