"""The logging-policy self-check on a log written by the service itself: an ε-greedy pipeline served in-process,
impressions posted with the propensities it returned, simulated clicks posted after them, the state store read back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from fastapi.testclient import TestClient

from rankstack.data.dataset import Dataset
from rankstack.experiments.pipeline_training import fit_stages
from rankstack.ope.bandit_log import bandit_log_from_events
from rankstack.ope.sanity import logging_policy_check
from rankstack.ope.service_log import read_service_events
from rankstack.pipeline.api import RecommendRequest
from rankstack.pipeline.artifact import save_artifact
from rankstack.pipeline.config import validate_pipeline_config
from rankstack.pipeline.pipeline import Pipeline
from rankstack.serving import ServiceSettings, create_app
from rankstack.state import SQLiteStateStore

EPSILON, POOL, K, USERS, REPEATS = 0.3, 8, 3, 12, 25


def history() -> Dataset:
    """24 items; each user clicked five items of its taste group (item index mod 3)."""
    rng = np.random.default_rng(11)
    rows = [(f"user{u}", f"item{i}", 1_750_000_000 + 60 * t)
            for u in range(USERS) for t, i in enumerate(rng.choice(range(u % 3, 24, 3), size=5, replace=False))]
    return Dataset.from_events(pl.DataFrame(rows, schema=["user_id", "item_id", "timestamp"], orient="row"),
                               name="history")


def artifact(parts: object, exploration: dict[str, object], folder: Path) -> Path:
    """The fitted stages saved under a config with the given exploration."""
    config = validate_pipeline_config({
        "name": "h", "data": {"name": "history"}, "sources": [{"name": "popular", "k": 12}],
        "merge": {"k": 12}, "exploration": exploration, "evaluation": {"ks": [3], "funnel_ks": [12]},
        "deadlines_ms": {"retrieval": 30_000, "ranker": 30_000, "rerank": 30_000},
    })
    manifest = {"version": folder.name, "name": "h", "created_at": "2026-01-01T00:00:00+00:00",
                "config": config.model_dump(mode="json"), "data": {"name": "history"}, "metrics": {"pipeline": {}}}
    return save_artifact(parts, manifest, folder)  # type: ignore[arg-type]


def test_ips_self_estimate_on_a_served_log(tmp_path: Path) -> None:
    explore = {"policy": "epsilon_greedy", "epsilon": EPSILON, "pool": POOL, "seed": 5}
    config = validate_pipeline_config({"name": "h", "data": {"name": "history"},
                                       "sources": [{"name": "popular", "k": 12}], "merge": {"k": 12},
                                       "exploration": explore})
    parts = fit_stages(config, history(), lambda _m: None)
    served = artifact(parts, explore, tmp_path / "explore-0001")
    greedy_model = Pipeline.load(artifact(parts, {"policy": "greedy", "pool": POOL}, tmp_path / "greedy-0001"))
    store = SQLiteStateStore(tmp_path / "state.db")
    click_rate = {f"item{i}": 0.1 + 0.5 * (i % 2) for i in range(24)}  # odd items click often
    rng = np.random.default_rng(0)
    events = []
    with TestClient(create_app(Pipeline.load, store, ServiceSettings(artifact=served, deadline_s=30.0))) as client:
        for u in range(USERS):
            for j in range(REPEATS):
                rid = f"u{u}-{j}"
                body = client.post("/v1/recommend", json={"user_id": f"user{u}", "k": K, "request_id": rid}).json()
                for slot, it in enumerate(body["items"]):
                    events.append({"event_id": f"{rid}-i{slot}", "user_id": f"user{u}", "item_id": it["item_id"],
                                   "event": "impression", "request_id": rid, "propensity": it["propensity"]})
                    if rng.random() < click_rate[it["item_id"]]:
                        events.append({"event_id": f"{rid}-c{slot}", "user_id": f"user{u}",
                                       "item_id": it["item_id"], "event": "click", "request_id": rid})
        for start in range(0, len(events), 500):  # feedback after serving: the policy stays the same throughout
            assert client.post("/v1/events", json={"events": events[start:start + 500]}).status_code == 200
    store.close()
    empty = SQLiteStateStore(tmp_path / "empty.db")
    answers = greedy_model.recommend([RecommendRequest(user_id=f"user{u}", k=K) for u in range(USERS)], empty)
    greedy = {f"user{u}": [it.item_id for it in answer.items] for u, answer in enumerate(answers)}
    empty.close()
    greedy_model.close()

    frame = read_service_events(tmp_path / "state.db")
    log = bandit_log_from_events(frame, source="state.db")
    shown = frame.filter(pl.col("event") == "impression")
    # π_0 from the policy's definition: the greedy item of a slot has 1 − ε + ε/pool, any other pool item ε/pool
    recomputed = np.array([(1 - EPSILON) * (greedy[u][slot] == item) + EPSILON / POOL for u, item, slot in
                           zip(shown["user_id"], shown["item_id"], shown["position"], strict=True)])
    assert log.n_rounds == USERS * REPEATS * K and 0 < log.reward.mean() < 1
    check = logging_policy_check(log.reward, recomputed, log.pscore)
    assert check.passed, check
    assert np.allclose(recomputed, log.pscore)  # the service's propensities are exactly the policy's
    wrong = logging_policy_check(log.reward, recomputed, np.minimum(1.0, log.pscore * K))  # a slots-vs-slate bug
    assert not wrong.passed


pytestmark = pytest.mark.slow  # trains a tiny pipeline and serves 300 requests (~8 s on a busy box)
