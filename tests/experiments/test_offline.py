"""Offline evaluation through the pipeline (batch form or requests) matches direct full-ranking evaluation; training
end to end."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from rankstack.data.dataset import Dataset
from rankstack.evaluation.evaluator import Evaluator
from rankstack.events import Event
from rankstack.experiments.offline import (
    evaluate_model,
    evaluate_recommender,
    held_out_users,
    pipeline_slates,
    recommended_slates,
    replay,
    replay_log,
    requests_for,
    same_ids,
    slates_matrix,
)
from rankstack.experiments.pipeline_training import train_pipeline
from rankstack.pipeline.api import RecommendRequest, RecommendResponse
from rankstack.pipeline.config import validate_pipeline_config
from rankstack.pipeline.pipeline import Pipeline
from rankstack.state.store import StateStore

from .conftest import build, config_dict, small_events


def test_replay_metrics_equal_direct_evaluation(small_split: tuple[Dataset, Dataset]) -> None:
    fit, held = small_split
    pipe = build(fit, sources=[{"name": "itemknn", "settings": {"neighbors": 10}, "k": 30}], merge={"k": 30})
    via_recommend = evaluate_recommender(pipe, fit, held, [5, 10])
    direct = Evaluator.from_datasets(fit, held, ks=[5, 10]).evaluate(pipe.parts.sources["itemknn"])
    assert via_recommend.keys() == direct.keys()
    assert all(np.isclose(via_recommend[k], direct[k]) for k in direct), (via_recommend, direct)


def test_requests_cover_every_held_out_user(small_split: tuple[Dataset, Dataset]) -> None:
    _, held = small_split
    reqs = requests_for(held, 10)
    assert len(reqs) == held.events.get_column("user_id").n_unique()
    assert reqs[0].request_id == f"offline-{reqs[0].user_id}" and reqs[0].k == 10


def test_train_pipeline_on_an_event_log(tmp_path: Path) -> None:
    log = tmp_path / "events.csv"
    small_events().write_csv(log)
    config = validate_pipeline_config(config_dict(data={"name": str(log)}, ranker={"source": "fakeseq"}))
    messages: list[str] = []
    result = train_pipeline(config, log=messages.append)
    manifest = result.manifest
    assert manifest["data"]["split"] == "leave_one_out" and len(manifest["data"]["checksum"]) == 64
    assert set(manifest["metrics"]["sources"]) == {"popular", "itemknn"}
    funnel = manifest["metrics"]["funnel"]
    assert set(funnel["recall"]) == {"popular", "itemknn", "merged"}
    kept = list(funnel["stages"].values())
    assert next(iter(funnel["stages"])) == "retrieval (merged, 30 candidates)" and kept[0] >= kept[-1]
    assert 0.0 <= manifest["metrics"]["pipeline"]["recall@10"] <= 1.0
    assert manifest["stages"] == ["retrieval", "ranker", "exploration"]
    assert result.pipeline.version == manifest["version"] and manifest["version"].startswith("small-")
    assert any("funnel" in m for m in messages)


@pytest.mark.parametrize("eval_on", ["validation", "test"])
def test_eval_on_picks_the_held_out_part(tmp_path: Path, eval_on: str) -> None:
    log = tmp_path / "events.csv"
    small_events().write_csv(log)
    config = validate_pipeline_config(config_dict(data={"name": str(log), "eval_on": eval_on}))
    result = train_pipeline(config)
    assert result.manifest["data"]["eval_on"] == eval_on and len(result.held_out) == 60


def test_sasrec_ranker_trains_saves_and_reloads_with_identical_slates(tmp_path: Path) -> None:
    from rankstack.pipeline.artifact import save_artifact
    from rankstack.pipeline.pipeline import Pipeline

    log = tmp_path / "events.csv"
    small_events().write_csv(log)
    sasrec = {"source": "sasrec", "history": 10, "settings": {"epochs": 2, "max_len": 10, "hidden_dim": 8,
                                                              "validation": False, "device": "cpu"}}
    config = validate_pipeline_config(config_dict(data={"name": str(log)}, ranker=sasrec))
    result = train_pipeline(config)
    save_artifact(result.pipeline.parts, result.manifest, tmp_path / "art")
    reqs = [RecommendRequest(user_id=u, k=5, request_id=u) for u in ("u1", "u2", "nobody")]
    unsaved = {"stage_ms", "model_digest"}  # the trained pipeline has no digest until it is loaded from disk
    before = [r.model_dump(exclude=unsaved) for r in result.pipeline.recommend(reqs)]
    after = [r.model_dump(exclude=unsaved) for r in Pipeline.load(tmp_path / "art").recommend(reqs)]
    assert before[0]["stages"]["ranker"] == "ran"
    assert_same_slates(before, after)


def assert_same_slates(before: list[dict], after: list[dict]) -> None:
    """Same responses, items in the same order; float32 scores equal up to rounding.

    The reloaded pipeline warms its SASRec states in one batch at load, the trained one computes them per request:
    matmuls over different batch shapes may differ in the last bit of a float32.
    """
    strip = [{k: v for k, v in r.items() if k != "items"} for r in (*before, *after)]
    assert strip[: len(before)] == strip[len(before):]
    for b, a in zip(before, after, strict=True):
        assert [i["item_id"] for i in b["items"]] == [i["item_id"] for i in a["items"]]
        np.testing.assert_allclose([i["score"] for i in b["items"]], [i["score"] for i in a["items"]], rtol=1e-6)



def test_sasrec_state_cache_is_warmed_and_serves_the_same_slates(tmp_path: Path) -> None:
    log = tmp_path / "events.csv"
    small_events().write_csv(log)
    sasrec = {"source": "sasrec", "history": 10, "state_cache": 1000,
              "settings": {"epochs": 2, "max_len": 10, "hidden_dim": 8, "validation": False, "device": "cpu"}}
    pipe = train_pipeline(validate_pipeline_config(config_dict(data={"name": str(log)}, ranker=sasrec))).pipeline
    cache = pipe.parts.ranker.source.state_cache
    assert cache is not None and len(cache) > 0  # filled by the offline evaluation
    cache.clear()
    warmed = pipe.warm_states()
    assert warmed == sum(len(h) > 0 for h in pipe.parts.histories) and len(cache) == warmed
    state = ListState()
    state.add_events([Event(event_id="e1", user_id="u1", item_id="i3", event="click", timestamp=time.time())])
    reqs = [RecommendRequest(user_id=u, k=5, request_id=u) for u in ("u1", "u2", "u3")]
    hits, misses = cache.hits, cache.misses
    cached = [r.items for r in pipe.recommend(reqs, state)]
    assert (cache.hits - hits, cache.misses - misses) == (2, 1)  # u1's fresh click makes a new history
    assert pipe.state_cache_counts() == (cache.hits, cache.misses, len(cache))  # what the service's metrics read
    off = sasrec | {"state_cache": 0}
    uncached = pipe.with_config(pipe.config.model_copy(update={"ranker": pipe.config.ranker.model_copy(update=off)}))
    assert uncached.parts.ranker.source.state_cache is None and uncached.warm_states() == 0
    assert uncached.state_cache_counts() == (0, 0, 0)
    assert [[i.item_id for i in r] for r in cached] == [
        [i.item_id for i in r.items] for r in uncached.recommend(reqs, state)]


class ListState:
    """The smallest in-memory StateStore: events in a list."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def add_events(self, events: Sequence[Event]) -> int:
        self.events.extend(events)
        return len(events)

    def recent_items(self, user_id: str, n: int, *, events: Sequence[str] = ("click", "conversion")) -> list[str]:
        return [e.item_id for e in self.events if e.user_id == user_id and e.event in events][-n:]

    def exposure_counts(self, user_id: str, *, since: float, events: Sequence[str] = ("impression",)) -> dict[str, int]:
        return {}

    def bandit_stats(self, arm_ids: Sequence[str]) -> dict[str, tuple[float, float]]:
        return {}

    def healthy(self) -> bool:
        return True


def test_log_replay_feeds_each_event_to_the_state_before_the_next_slate(small_split: tuple[Dataset, Dataset]) -> None:
    fit, held = small_split
    pipe = build(fit, ranker={"source": "fakeseq"})
    state = ListState()
    result = replay_log(pipe, held, state, k=10, limit=25)
    assert result["events"] == 25.0 and 0.0 <= result["hr@10"] <= 1.0
    assert len(state.events) == 25 and state.events[0].event == "click" and state.events[0].timestamp
    times = [e.timestamp or 0 for e in state.events]
    assert times == sorted(times) and times[0] > 1e9  # epoch seconds, in time order
    user = state.events[0].user_id
    (resp,) = pipe.recommend([RecommendRequest(user_id=user, k=10)], state)
    assert state.events[0].item_id not in [i.item_id for i in resp.items]  # a replayed click is not re-shown


def test_pipeline_slates_follow_the_evaluator_tie_rule(small_split: tuple[Dataset, Dataset]) -> None:
    fit, held = small_split  # 40 items over 60 users: the popularity counts tie a lot
    pipe = build(fit, sources=[{"name": "popular", "k": 10}], merge={"k": 10})
    evaluator = Evaluator.from_datasets(fit, held, ks=[10])
    responses = list(replay(pipe, requests_for(held, 10)))
    slates = slates_matrix(responses, held, 10)[evaluator.user_ids]
    np.testing.assert_array_equal(slates, evaluator.recommend(pipe.parts.sources["popular"], evaluator.user_ids))
    assert evaluate_recommender(pipe, fit, held, [10]) == evaluator.evaluate(pipe.parts.sources["popular"])


def test_a_ranker_stopped_by_its_time_budget_says_so(tmp_path: Path) -> None:
    log = tmp_path / "events.csv"
    small_events().write_csv(log)
    settings = {"epochs": 3, "time_budget_s": 1e-6, "max_len": 8, "hidden_dim": 8, "batch_size": 8,
                "validation": False, "device": "cpu"}
    config = validate_pipeline_config(config_dict(data={"name": str(log)}, ranker={"source": "sasrec",
                                                                                   "settings": settings}))
    messages: list[str] = []
    manifest = train_pipeline(config, log=messages.append).manifest
    stop = manifest["budget_stops"]["ranker"]
    assert (stop["epochs_done"], stop["epochs"], stop["partial_epoch"]) == (0, 3, "kept")
    assert manifest["budget_stops"]["sources"] == {}
    assert any(m.startswith("ranker sasrec: fitted in") and "stopped by time_budget_s=1e-06 after 0 of 3 epochs" in m
               for m in messages), messages


class ViaRequests:
    """A recommender that is not a ``Pipeline``: offline evaluation reaches it through ``recommend`` only."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.version = pipeline.version
        self.calls = 0

    def recommend(self, requests: Sequence[RecommendRequest], state: StateStore | None = None, *,
                  deadline_s: float | None = None, stage_deadlines: bool = True) -> list[RecommendResponse]:
        self.calls += 1
        return self.pipeline.recommend(requests, state, deadline_s=deadline_s, stage_deadlines=stage_deadlines)


def test_pipeline_evaluation_uses_the_batch_form_with_the_same_slates(small_split: tuple[Dataset, Dataset],
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    fit, held = small_split
    pipe = build(fit, exploration={"policy": "epsilon_greedy", "epsilon": 0.4, "pool": 15},
                 ranker={"source": "fakeseq"})
    proxy = ViaRequests(pipe)
    via_requests = evaluate_recommender(proxy, fit, held, [5, 10], batch_size=7)
    assert proxy.calls == -(-len(requests_for(held, 10)) // 7)
    monkeypatch.setattr(Pipeline, "recommend", lambda *a, **k: pytest.fail("offline evaluation built requests"))
    assert evaluate_recommender(pipe, fit, held, [5, 10], batch_size=7) == via_requests
    slates = pipeline_slates(pipe, held, 10, batch_size=7)
    users = held_out_users(held)
    assert (slates[users] >= 0).all() and (np.delete(slates, users, axis=0) == -1).all()


def test_evaluate_model_takes_sources_and_pipelines(small_split: tuple[Dataset, Dataset]) -> None:
    fit, held = small_split
    pipe = build(fit)
    evaluator = Evaluator.from_datasets(fit, held, ks=[5, 10])
    source = pipe.parts.sources["itemknn"]
    assert evaluate_model(source, fit, held, [5, 10], evaluator=evaluator) == evaluator.evaluate(source)
    assert evaluate_model(pipe, fit, held, [5, 10]) == evaluator.evaluate_recs(pipeline_slates(pipe, held, 10))


def test_a_pipeline_over_other_ids_is_evaluated_through_requests(small_split: tuple[Dataset, Dataset]) -> None:
    fit, held = small_split
    pipe = build(fit)
    other = Dataset.from_events(small_events(n_users=61), name="other")
    assert same_ids(pipe, held) and not same_ids(pipe, other)
    proxy = ViaRequests(pipe)
    want = slates_matrix(list(replay(proxy, requests_for(other, 10))), other, 10)
    assert (recommended_slates(pipe, other, 10) == want).all()



def test_the_manifest_says_how_each_stage_trained(tmp_path: Path) -> None:
    log = tmp_path / "events.csv"
    small_events().write_csv(log)
    settings = {"epochs": 2, "max_len": 8, "hidden_dim": 8, "batch_size": 8, "validation": False, "device": "cpu"}
    config = validate_pipeline_config(config_dict(data={"name": str(log)}, ranker={"source": "sasrec",
                                                                                   "settings": settings}))
    messages: list[str] = []
    training = train_pipeline(config, log=messages.append).manifest["training"]
    assert {k: training["ranker"][k] for k in ("epochs_run", "best_epoch", "stopped_by")} == {
        "epochs_run": 2, "best_epoch": 2, "stopped_by": "epochs"}
    assert training["sources"] and all(s["stopped_by"] == "converged" and s["epochs_run"] == 0
                                       for s in training["sources"].values())
    assert any(m.startswith("ranker sasrec: fitted in") and "2 epochs (best 2), stopped by epochs" in m
               for m in messages), messages
