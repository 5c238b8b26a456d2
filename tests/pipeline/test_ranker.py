"""The pipeline knows its ranker only through ``rankstack.ranking.Ranker``: any object with the protocol ranks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from rankstack.data.dataset import Dataset
from rankstack.errors import ConfigError
from rankstack.pipeline.api import RecommendRequest
from rankstack.pipeline.pipeline import Pipeline
from rankstack.ranking.ranker import RankBatch
from rankstack.ranking.sequential import NEXT_ITEM, SequentialRanker
from rankstack.retrieval.source import CandidateSource

from .conftest import build


class ByItemId:
    """A protocol-only ranker (no model behind it): scores each candidate by its id, highest first."""

    name = "by-item-id"
    objectives = (NEXT_ITEM,)
    needs_history = False

    def __init__(self) -> None:
        self.batches: list[RankBatch] = []

    def score(self, batch: RankBatch) -> dict[str, np.ndarray]:
        self.batches.append(batch)
        return {NEXT_ITEM: np.where(batch.item_ids >= 0, batch.item_ids.astype(np.float64), np.nan)}

    def keep_states(self, capacity: int) -> None:
        pass

    def warm(self, histories: Sequence[np.ndarray]) -> int:
        return 0

    def save(self, root: Path, sources: dict[str, CandidateSource]) -> str:
        return "ranker"


REQUESTS = [RecommendRequest(user_id=u, k=5, request_id=f"r-{u}", context={"page": u})
            for u in ("u0", "u3", "stranger")]


def test_any_ranker_with_the_protocol_orders_the_slates(small_split: tuple[Dataset, Dataset]) -> None:
    fit = small_split[0]
    base = build(fit, ranker={"source": "fakeseq"}, value={"objective": {"terms": [{"factors": ["ranker"]}]}})
    ranker = ByItemId()
    pipe = Pipeline(replace(base.parts, ranker=ranker))
    responses = pipe.recommend(REQUESTS, stage_deadlines=False)
    (block,) = ranker.batches
    assert block.item_ids.shape[0] == 3 and [dict(c) for c in block.contexts] == [{"page": u} for u in
                                                                                   ("u0", "u3", "stranger")]
    assert set(block.sources) == set(base.parts.sources) and block.user_ids[-1] == -1
    for response in responses:
        internal = pipe.parts.item_map.to_internal([i.item_id for i in response.items]).tolist()
        assert internal == sorted(internal, reverse=True) and len(internal) == 5
        assert response.stages["ranker"] == "ran"  # needs_history False: every row is ranked


def test_a_ranker_without_the_ordered_objective_is_refused(small_split: tuple[Dataset, Dataset]) -> None:
    base = build(small_split[0], ranker={"source": "fakeseq"})
    ranker = ByItemId()
    ranker.objectives = ("click",)  # type: ignore[assignment]
    with pytest.raises(ConfigError, match=r"reads \['next_item'\]; the sequential stage's ranker 'by-item-id'"):
        Pipeline(replace(base.parts, ranker=ranker))


def test_the_sequential_ranker_scores_rows_with_a_history_only(small_split: tuple[Dataset, Dataset]) -> None:
    pipe = build(small_split[0], ranker={"source": "fakeseq"})
    ranker = pipe.parts.ranker
    assert isinstance(ranker, SequentialRanker) and ranker.objectives == (NEXT_ITEM,) and ranker.needs_history
    items = np.array([[3, 1, -1], [2, 5, 7]])
    scores = ranker.score(RankBatch(np.array([0, 1]), items, [np.array([4, 2]), np.zeros(0, np.int64)]))
    assert list(scores) == [NEXT_ITEM]
    np.testing.assert_array_equal(scores[NEXT_ITEM], [[-3.0, -1.0, np.nan], [np.nan] * 3])  # FakeSeq: −item id


def test_a_model_that_cannot_rescore_is_not_a_sequential_ranker(small_split: tuple[Dataset, Dataset]) -> None:
    pipe = build(small_split[0])
    with pytest.raises(ConfigError, match="ranker MostPopular has no score_candidates method"):
        SequentialRanker(pipe.parts.fallback)
