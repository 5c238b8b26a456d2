"""The closed loop on a tiny world: the estimate reads the exploration log only, the realised value is the
simulator's truth on the candidate's deployed slates, the log's propensities match the pipeline's ε-greedy."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from rankstack.experiments import closed_loop
from rankstack.experiments.closed_loop import LoopSettings, one_seed, run_loop
from rankstack.experiments.loop_world import LoggedSlates, LoopWorld, build_world, run_traffic
from rankstack.pipeline.config import ExplorationStage
from rankstack.simulation import SimulatorConfig

TINY = LoopSettings(seeds=1, rounds=60, deploy_rounds=40, epsilon=0.5, pool=6, bootstrap=20, support_sample=20,
                    candidate_click_weights=(3.0,))


@pytest.fixture(scope="module")
def world() -> LoopWorld:
    """60 users, 25 items, a 3,000-impression history, the ranker trained for one epoch."""
    return build_world(SimulatorConfig(n_users=60, n_items=25, n_impressions=3_000, seed=3), epochs=1)


def _quiet(_msg: str) -> None:
    """No log lines."""


def test_the_current_pipeline_logs_epsilon_greedy_propensities(world: LoopWorld) -> None:
    current = world.variant(0.5, ExplorationStage(policy="epsilon_greedy", epsilon=0.5, pool=6, seed=1))
    logged = run_traffic(world, current, rounds=30, k=5, traffic_seed=0, prefix="t-")
    assert logged.items.shape == logged.propensity.shape == (30, 5)
    assert set(np.round(logged.propensity, 9).ravel()) <= {round(0.5 / 6, 9), round(0.5 + 0.5 / 6, 9)}
    assert (np.sort(logged.items, axis=1)[:, 1:] != np.sort(logged.items, axis=1)[:, :-1]).all()  # distinct items
    again = run_traffic(world, current, rounds=30, k=5, traffic_seed=0, prefix="t-")
    assert (again.items == logged.items).all() and (again.clicks == logged.clicks).all()  # seeded
    current.close()


def test_estimates_read_the_log_and_the_realised_value_reads_the_truth(world: LoopWorld, monkeypatch) -> None:
    base = one_seed(world, TINY, 0, _quiet)["candidates"]["3"]
    assert base["propensity_mismatches"] == 0 and base["checked_requests"] == 20

    def blinded(*args: Any, **kwargs: Any) -> LoggedSlates:
        """The exploration log without the truth (NaN); the deployment's truth doubled, its sampled rewards NaN."""
        out = run_traffic(*args, **kwargs)
        nan = np.full(out.items.shape, np.nan)
        if kwargs["prefix"].startswith("log"):
            return replace(out, true_clicks=nan, true_revenue=nan)
        return replace(out, true_clicks=2 * out.true_clicks, clicks=nan, revenue=nan)

    monkeypatch.setattr(closed_loop, "run_traffic", blinded)
    seen = one_seed(world, TINY, 0, _quiet)["candidates"]["3"]
    for name, est in base["estimators"].items():
        assert seen["estimators"][name]["estimate"] == pytest.approx(est["estimate"]), name
        assert np.isfinite(seen["estimators"][name]["estimate"])
    assert seen["realised"] == pytest.approx(2 * base["realised"])


def test_realised_is_the_truth_of_the_deployed_slates(world: LoopWorld) -> None:
    candidate = world.variant(3.0, ExplorationStage(policy="greedy"))
    deployed = run_traffic(world, candidate, rounds=40, k=5, traffic_seed=1, prefix="deploy0-")
    truth = world.sim.expected_value(deployed.requests, deployed.items, deployed.exposures)  # fatigue 0.85 here
    assert deployed.true_clicks == pytest.approx(truth.clicks)
    record = one_seed(world, TINY, 0, _quiet)["candidates"]["3"]
    assert record["realised"] == pytest.approx(1000 * deployed.true_clicks.mean())
    candidate.close()


def test_run_loop_summarises_every_seed_and_the_tuning(world: LoopWorld) -> None:
    settings = replace(TINY, seeds=2, candidate_click_weights=(3.0, 0.0))
    result = run_loop(world, settings)
    assert [r["seed"] for r in result["seeds"]] == [0, 1]
    summary = result["summary"]
    assert set(summary["candidates"]) == {"3", "0"}
    head = summary["headline"]
    assert head["estimator"] == "independent DR" and head["seeds"] == 2
    assert 0 <= head["inside_ci"] <= 2 and isinstance(head["goal_met"], bool)
    tune = summary["tuning"]
    assert tune["seeds"] == 2 and tune["mean_regret"] >= 0
    for row in tune["per_seed"]:
        assert row["truth_choice_realised"] >= row["ope_choice_realised"]


@pytest.mark.parametrize(("changes", "message"), [
    ({"pool": 5}, "must exceed the slate"),
    ({"epsilon": 0.0}, "epsilon must lie in"),
    ({"estimator": "PI"}, "unknown estimator 'PI'"),
    ({"candidate_click_weights": ()}, "at least one candidate"),
    ({"bootstrap": 2}, "at least 10"),
])
def test_bad_settings(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LoopSettings(**changes)
