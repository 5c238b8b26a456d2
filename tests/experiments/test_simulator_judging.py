"""Judging pipeline slates with the simulator's truth: logged requests replayed through the pipeline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

import rankstack.experiments.simulator_judging as judging
from rankstack.data.loaders import load_dataset
from rankstack.experiments.pipeline_training import TrainResult
from rankstack.experiments.simulator_judging import as_recommend_requests, judge_slates, logged_requests, served_slates
from rankstack.simulation import MarketplaceSimulator, load_simulation_config
from rankstack.simulation.slates import simulator_requests


def test_logged_requests_are_distinct_held_out_requests_with_their_context(sim_trained: TrainResult) -> None:
    requests = logged_requests(sim_trained.held_out, 50)
    assert requests.height == 50 and requests.get_column("request_id").n_unique() == 50
    assert requests.columns == ["request_id", "timestamp", "user_id", "device", "placement", "hour"]
    assert requests.get_column("timestamp").is_sorted()
    fitted_until = sim_trained.fit_data.events.get_column("timestamp").max()
    assert all(t > fitted_until for t in requests.get_column("timestamp").to_list())  # after everything fitted
    (req,) = as_recommend_requests(sim_trained.held_out, requests.head(1), k=3)
    row = requests.row(0, named=True)
    assert req.request_id == row["request_id"] and req.k == 3
    assert req.context == {"device": row["device"], "placement": row["placement"], "hour": row["hour"]}
    assert sim_trained.held_out.user_map.to_internal([req.user_id])[0] == row["user_id"]


def test_judged_revenue_is_the_simulators_expected_value_of_the_returned_slates(
        sim_trained: TrainResult, sim_folder: Path) -> None:
    data = load_dataset(str(sim_folder))
    config = load_simulation_config(sim_folder)
    assert config is not None
    sim = MarketplaceSimulator(config)
    requests = logged_requests(sim_trained.held_out, 20)
    judged = judge_slates(sim_trained.pipeline, sim, data, requests, 4)
    responses = sim_trained.pipeline.recommend(as_recommend_requests(data, requests, 4), stage_deadlines=False)
    slates = np.array([[int(i.item_id) for i in r.items] for r in responses])
    shown = data.events.filter(pl.col("event") == "impression")
    exposures = np.zeros(slates.shape)  # the log's earlier impressions of each (user, item) pair
    users = data.user_map.to_external(requests.get_column("user_id").to_numpy()).to_list()
    for r, (user, when) in enumerate(zip(users, requests.get_column("timestamp").to_list(), strict=True)):
        earlier = shown.filter(pl.col("timestamp") < when,
                               pl.col("user_id") == data.user_map.to_internal([str(user)])[0])
        items = data.item_map.to_external(earlier.get_column("item_id").to_numpy()).to_list()
        exposures[r] = [sum(str(i) == str(x) for x in items) for i in slates[r]]
    value = sim.expected_value(simulator_requests(sim, data, requests), slates, exposures).per_request()
    assert judged["requests"] == 20 and judged["ranker_ran"] == 1.0
    np.testing.assert_allclose(judged["revenue_per_mille"], 1000 * value["revenue"].sum() / slates.size)
    np.testing.assert_allclose(judged["clicks_per_mille"], 1000 * value["clicks"].sum() / slates.size)


def test_the_batch_form_and_requests_serve_the_same_judged_slates(sim_trained: TrainResult, sim_folder: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    data = load_dataset(str(sim_folder))
    requests = logged_requests(sim_trained.held_out, 30)
    monkeypatch.setattr(sim_trained.pipeline, "recommend", lambda *a, **k: pytest.fail("judging built requests"))
    batch, ran = served_slates(sim_trained.pipeline, data, requests, 4)
    monkeypatch.undo()
    monkeypatch.setattr(judging, "same_ids", lambda *_: False)
    via_requests, ran_requests = served_slates(sim_trained.pipeline, data, requests, 4)
    assert batch.shape == (30, 4) and (batch == via_requests).all() and ran == ran_requests
