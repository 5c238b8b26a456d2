"""The multi-task ranker stage in ``Pipeline.recommend``: context features, exposures, degradation, round trip."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rankstack.errors import ArtifactError
from rankstack.experiments.pipeline_training import TrainResult
from rankstack.pipeline.api import RecommendRequest
from rankstack.pipeline.artifact import save_artifact
from rankstack.pipeline.multitask_stage import MultiTaskStage
from rankstack.pipeline.pipeline import Pipeline
from rankstack.ranking.ranker import RankBatch
from rankstack.testing.rankers import check_ranker

CONTEXT: dict[str, str | int | float | bool] = {"device": "mobile", "placement": "home", "hour": 9}


def requests(n: int = 8, **context: Any) -> list[RecommendRequest]:
    """Requests of users 0..n-1 with the given context (default: mobile, home, 9 h)."""
    return [RecommendRequest(user_id=str(u), k=5, context=context or CONTEXT, request_id=f"r{u}") for u in range(n)]


def slates(pipeline: Pipeline, reqs: list[RecommendRequest]) -> list[list[tuple[str, float]]]:
    """Item ids and scores of each response."""
    return [[(i.item_id, i.score) for i in r.items] for r in pipeline.recommend(reqs, stage_deadlines=False)]


def test_artifact_round_trip_gives_identical_slates(sim_trained: TrainResult, tmp_path: Path) -> None:
    out = save_artifact(sim_trained.pipeline.parts, sim_trained.manifest, tmp_path / "artifact")
    loaded = Pipeline.load(out)
    assert isinstance(loaded.parts.ranker, MultiTaskStage)
    reqs = [*requests(), RecommendRequest(user_id="no-such-user", k=5, context=CONTEXT, request_id="cold")]
    assert slates(loaded, reqs) == slates(sim_trained.pipeline, reqs)
    (out / "ranker" / "stage.json").write_text('{"format": 1, "context": [], "score_sources": []}\n')
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        Pipeline.load(out)


def test_request_context_feeds_the_rankers_context_features(sim_trained: TrainResult) -> None:
    stage = sim_trained.pipeline.parts.ranker
    assert isinstance(stage, MultiTaskStage) and stage.context == ["device", "placement", "hour"]
    users, items = np.array([0, -1]), np.array([[1, 2], [3, -1]])
    rows = stage.rows(users, items, [CONTEXT, {"hour": "9", "unknown": 1}], np.zeros(items.shape),
                      sim_trained.pipeline.parts.sources)
    assert rows.get_column("item_id").to_list() == [1, 2, 3]
    assert rows.get_column("device").to_list() == ["mobile", "mobile", None]
    assert rows.get_column("hour").to_list() == ["9", "9", "9"]
    assert rows.get_column("score_itemknn").null_count() + rows.get_column("score_itemknn").is_nan().sum() == 1
    assert rows.get_column("segment")[2] is None  # unknown user: no user features, the encoder's "unseen"
    by_context = {placement: stage.predict(np.array([0]), np.array([[1, 2, 3]]), [{**CONTEXT, "placement": placement}],
                                           np.zeros((1, 3)), sim_trained.pipeline.parts.sources)["click"]
                  for placement in ("home", "search")}
    assert not np.allclose(by_context["home"], by_context["search"])


def test_the_multitask_stage_passes_the_ranker_suite(sim_trained: TrainResult) -> None:
    stage = sim_trained.pipeline.parts.ranker
    assert isinstance(stage, MultiTaskStage)
    sources = sim_trained.pipeline.parts.sources
    users, items = np.array([0, 1, 2]), np.array([[1, 2, 3, -1], [4, 5, 6, 7], [8, -1, -1, 9]])
    check_ranker(lambda u, i: stage.predict(u, i, [CONTEXT] * len(u), np.zeros(i.shape), sources), users, items,
                 probabilities=frozenset({"click", "conversion", "cvr"}))


def test_calibrated_heads_reach_the_value_stage(sim_trained: TrainResult) -> None:
    pipeline = sim_trained.pipeline
    stage = pipeline.parts.ranker
    assert isinstance(stage, MultiTaskStage)
    (response,) = pipeline.recommend(requests(1), stage_deadlines=False)
    assert response.stages["ranker"] == "ran" and response.stages["value"] == "ran"
    internal = pipeline.parts.item_map.to_internal([i.item_id for i in response.items])
    heads = stage.predict(np.array([0]), internal[None, :], [CONTEXT], np.zeros((1, 5)), pipeline.parts.sources)
    value = heads["click"] * heads["cvr"] * heads["payout"] + 0.5 * heads["click"]
    # float32 network: the pipeline scores the whole candidate block, this call only the 5 picks, and matmuls over
    # different shapes may round differently in the last bit
    np.testing.assert_allclose([i.score for i in response.items], value[0], rtol=1e-6)
    assert list(value[0]) == sorted(value[0], reverse=True)


def test_exposures_come_from_the_state_store(sim_trained: TrainResult, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[np.ndarray] = []
    original = MultiTaskStage.predict

    def spy(self: MultiTaskStage, user_ids: np.ndarray, item_ids: np.ndarray, *args: Any) -> dict[str, np.ndarray]:
        seen.append(args[1])
        return original(self, user_ids, item_ids, *args)

    class Store:
        def recent_items(self, user_id: str, n: int, *, events: Any = ()) -> list[str]:
            return []

        def exposure_counts(self, user_id: str, *, since: float, events: Any = ()) -> dict[str, int]:
            return {"7": 3}

    monkeypatch.setattr(MultiTaskStage, "predict", spy)
    sim_trained.pipeline.recommend(requests(1), Store(), stage_deadlines=False)  # type: ignore[arg-type]
    sim_trained.pipeline.recommend(requests(1), stage_deadlines=False)
    candidates_with_7 = (seen[0] == 3).sum()
    assert candidates_with_7 == 1 and seen[0].sum() == 3  # item "7" was shown 3 times, nothing else
    assert seen[1].max() == 0  # no store: no exposures


@pytest.mark.parametrize("mode", ["raise", "sleep"])
def test_a_failing_or_slow_ranker_leaves_retrieval_order(sim_trained: TrainResult, mode: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = sim_trained.pipeline
    config = pipeline.config.model_copy(update={"deadlines_ms": pipeline.config.deadlines_ms.model_copy(
        update={"ranker": 50.0})})
    retrieval = pipeline.with_config(config.model_copy(update={"ranker": None, "value": None}))
    expected = [[i.item_id for i in r.items] for r in retrieval.recommend(requests(3))]

    def broken(*_args: Any) -> dict[str, np.ndarray]:
        if mode == "sleep":
            time.sleep(0.3)
        raise RuntimeError("ranker exploded")

    monkeypatch.setattr(MultiTaskStage, "predict", broken)
    degraded = pipeline.with_config(config)
    try:
        responses = degraded.recommend(requests(3))
    finally:
        degraded.close()
        retrieval.close()
    for response, items in zip(responses, expected, strict=True):
        assert response.stages["ranker"] == "degraded" and response.stages["value"] == "skipped"
        assert response.fallback == "retrieval_order"
        assert [i.item_id for i in response.items] == items


class Impressions:
    """Row 0's user saw item 2 three times; nobody else saw anything."""

    def counts(self, user_id: int, *, since: float, events: Any) -> dict[int, int]:
        return {2: 3} if user_id == 0 and tuple(events) == ("impression",) else {}


def test_the_stage_is_a_ranker_whose_objectives_are_its_predictions(sim_trained: TrainResult) -> None:
    stage = sim_trained.pipeline.parts.ranker
    assert isinstance(stage, MultiTaskStage) and set(stage.objectives) == stage.predictions
    assert not stage.needs_history and stage.warm([np.array([1])]) == 0
    users, items = np.array([0, 1]), np.array([[1, 2, 3], [2, 4, -1]])
    sources = sim_trained.pipeline.parts.sources
    scored = stage.score(RankBatch(users, items, contexts=[CONTEXT, CONTEXT], sources=sources,
                                   exposures=Impressions()))
    expected = stage.predict(users, items, [CONTEXT, CONTEXT], np.array([[0, 3, 0], [0, 0, 0]]), sources)
    assert set(scored) == set(stage.objectives)
    for name in scored:
        np.testing.assert_array_equal(scored[name], expected[name])
    unseen = stage.score(RankBatch(users, items, contexts=[CONTEXT, CONTEXT], sources=sources))
    assert not np.array_equal(unseen["click"], scored["click"], equal_nan=True)  # the exposures reach the features
