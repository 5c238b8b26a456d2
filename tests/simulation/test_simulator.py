"""The marketplace simulator: stated probabilities match empirical rates, determinism, canonical output."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from rankstack.bandits.logging_policies import logging_policy, simulate
from rankstack.data.loaders import load_dataset
from rankstack.data.schema import validate_events
from rankstack.simulation import (
    SIM_SCHEMA,
    MarketplaceSimulator,
    PolicyConfig,
    SimulatorConfig,
    load_simulation_config,
)

SMALL = SimulatorConfig(n_users=300, n_items=40, n_impressions=60_000, chunk_requests=3_000)


@pytest.fixture(scope="module")
def log():  # type: ignore[no-untyped-def]
    return simulate(SMALL)


def _z(successes: np.ndarray, probs: np.ndarray) -> float:
    """z-score of the observed count of Bernoulli(probs) successes against its expectation."""
    return float((successes.sum() - probs.sum()) / np.sqrt((probs * (1 - probs)).sum()))


def test_empirical_click_and_conversion_rates_match_the_stated_probabilities(log) -> None:  # type: ignore[no-untyped-def]
    assert abs(_z(log.click, log.p_click)) < 4
    clicked = log.click
    assert abs(_z(log.conversion[clicked], log.p_conversion[clicked])) < 4
    assert not log.conversion[~clicked].any()
    # within deciles of the stated click probability, and per slot
    edges = np.quantile(log.p_click, np.linspace(0, 1, 11))
    bins = np.clip(np.searchsorted(edges, log.p_click, side="right") - 1, 0, 9)
    for b in range(10):
        rows = bins == b
        assert abs(_z(log.click[rows], log.p_click[rows])) < 4.5
    for slot in range(SMALL.slate_size):
        rows = log.position == slot
        assert abs(_z(log.click[rows], log.p_click[rows])) < 4.5


def test_position_bias_and_fatigue_lower_the_click_probability() -> None:
    sim = MarketplaceSimulator(SMALL)
    reqs = sim.draw_requests(200, np.random.default_rng(0))
    items = np.tile(np.arange(5), (200, 1))
    slots = np.broadcast_to(np.arange(5), items.shape)
    same_item = np.zeros_like(items)
    p = sim.world.click_probability(reqs, same_item, slots)
    assert (np.diff(p, axis=1) < 0).all()  # same item, later slot → less likely clicked
    fresh = sim.world.click_probability(reqs, items, np.zeros_like(items), np.zeros_like(items))
    tired = sim.world.click_probability(reqs, items, np.zeros_like(items), np.full_like(items, 3))
    np.testing.assert_allclose(tired, fresh * SMALL.fatigue**3)


def test_revenue_is_the_payout_on_conversion(log) -> None:  # type: ignore[no-untyped-def]
    np.testing.assert_allclose(log.revenue[log.conversion], log.world.item_payout[log.item[log.conversion]])
    assert (log.revenue[~log.conversion] == 0).all()


def test_same_seed_same_log_and_other_seed_differs() -> None:
    cfg = SMALL.model_copy(update={"n_impressions": 5_000})
    a, b = simulate(cfg), simulate(cfg)
    assert a.events().equals(b.events()) and a.truth().equals(b.truth())
    c = simulate(cfg.model_copy(update={"seed": 1}))
    assert not np.array_equal(a.item, c.item)


def test_slates_hold_distinct_items_and_exposures_count_earlier_impressions(log) -> None:  # type: ignore[no-untyped-def]
    k = SMALL.slate_size
    slates = log.item.reshape(-1, k)
    assert (np.sort(slates, axis=1)[:, 1:] != np.sort(slates, axis=1)[:, :-1]).all()
    keys = log.user * SMALL.n_items + log.item
    order = np.argsort(keys, kind="stable")
    counts = np.empty(len(keys), dtype=np.int64)
    sk = keys[order]
    starts = np.r_[True, sk[1:] != sk[:-1]]
    counts[order] = np.arange(len(keys)) - np.maximum.accumulate(np.where(starts, np.arange(len(keys)), 0))
    np.testing.assert_array_equal(log.exposures, counts)


def test_events_are_canonical_and_saved_folder_loads(tmp_path, log) -> None:  # type: ignore[no-untyped-def]
    events = log.events()
    validate_events(events, source="sim", schema=SIM_SCHEMA)
    n = len(log)
    assert events.filter(pl.col("event") == "impression").height == n
    assert events.filter(pl.col("event") == "click").height == int(log.click.sum())
    conv = events.filter(pl.col("event") == "conversion")
    assert conv.height == int(log.conversion.sum())
    assert conv.get_column("value").sum() == pytest.approx(log.revenue.sum())
    small = simulate(SMALL.model_copy(update={"n_impressions": 2_003}))
    small.save(tmp_path)
    data = load_dataset(tmp_path)
    assert data.events.filter(pl.col("event") == "impression").height == 2_003
    truth = pl.read_parquet(tmp_path / "truth.parquet")
    assert truth.height == 2_003 and truth.select("request_id", "position").is_unique().all()
    assert load_simulation_config(tmp_path) == small.config


def test_budgets_stop_serving_an_exhausted_advertiser() -> None:
    cfg = SMALL.model_copy(update={"n_advertisers": 10, "advertiser_budget": 500.0, "n_impressions": 30_000,
                                   "chunk_requests": 200})
    log = simulate(cfg)
    assert log.spend.max() < 500.0 + log.world.item_payout.max() * 200 * cfg.slate_size
    exhausted = np.flatnonzero(log.spend >= 500.0)
    assert len(exhausted)
    adv = log.world.item_advertiser[log.item]
    for a in exhausted:
        rev = np.cumsum(np.where(adv == a, log.revenue, 0.0))
        crossed = np.argmax(rev >= 500.0)
        later_chunk = (log.request[crossed] // 200 + 1) * 200
        assert not (adv[log.request >= later_chunk] == a).any()


def test_drift_changes_item_appeal_over_time() -> None:
    sim = MarketplaceSimulator(SMALL.model_copy(update={"drift": 1.0}))
    reqs = sim.draw_requests(10, np.random.default_rng(0))
    early = reqs.take(slice(0, 10))
    late = type(reqs)(reqs.users, np.full(10, 0.99), reqs.hour, reqs.device, reqs.placement)
    early = type(reqs)(reqs.users, np.full(10, 0.01), reqs.hour, reqs.device, reqs.placement)
    items = np.tile(np.arange(SMALL.n_items), (10, 1))
    diff = sim.world.attraction_logit(late, items) - sim.world.attraction_logit(early, items)
    np.testing.assert_allclose(diff, 0.98 * 2 * sim.world.item_trend[items], rtol=1e-9)


@pytest.mark.parametrize("kind", ["uniform", "epsilon_greedy", "softmax"])
def test_every_policy_logs_valid_propensities(kind: str) -> None:
    cfg = SMALL.model_copy(update={"n_impressions": 3_000, "policy": PolicyConfig(kind=kind)})
    log = simulate(cfg)
    assert ((log.propensity > 0) & (log.propensity <= 1)).all()


def test_yaml_config_with_overrides_and_clear_errors(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from rankstack.errors import ConfigError
    from rankstack.simulation import load_simulator_config

    path = tmp_path / "sim.yaml"
    path.write_text("n_users: 50\npolicy: {kind: uniform}\n")
    cfg = load_simulator_config(path, n_items=20, seed=None)
    assert (cfg.n_users, cfg.n_items, cfg.policy.kind) == (50, 20, "uniform")
    path.write_text("n_users: 50\nwrong_key: 1\n")
    with pytest.raises(ConfigError, match="wrong_key"):
        load_simulator_config(path)


def test_sparse_and_dense_exposure_counters_agree() -> None:
    from rankstack.simulation.simulator import _ExposureCounter

    rng = np.random.default_rng(0)
    dense, sparse = _ExposureCounter(20, 10), _ExposureCounter(20, 10)
    sparse.dense = None
    for _ in range(5):
        users = rng.integers(0, 20, 30)
        items = np.stack([rng.permutation(10)[:3] for _ in range(30)])
        np.testing.assert_array_equal(dense.observe(users, items), sparse.observe(users, items))


def test_traffic_seeds_draw_fresh_traffic_in_the_same_world() -> None:
    sim = MarketplaceSimulator(SimulatorConfig(n_users=50, n_items=20, n_impressions=500, seed=4))
    policy = logging_policy(sim)
    a, again = (sim.run(policy, traffic_seed=1, n_impressions=200) for _ in range(2))
    b = sim.run(policy, traffic_seed=2, n_impressions=200)
    assert len(a) == len(b) == 200
    assert (a.item == again.item).all() and (a.click == again.click).all()
    assert not (a.user == b.user).all()
    assert (sim.run(policy).item == sim.run(policy).item).all()  # the config's own traffic, as before
    with pytest.raises(ValueError, match="traffic_seed must be >= 0"):
        sim.run(policy, traffic_seed=-1)
    with pytest.raises(ValueError, match="n_impressions must be at least 1"):
        sim.run(policy, n_impressions=0)
