"""Exploration in the pipeline: per-slot propensities in (0, 1] that match frequencies, reproducible per request."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rankstack.bandits.draws import request_rng
from rankstack.pipeline.config import ExplorationStage
from rankstack.pipeline.exploration_stage import explore

POOL = np.arange(100, 112)
SCORES = np.linspace(3.0, 0.0, len(POOL))


def test_greedy_is_the_top_k_without_propensity() -> None:
    items, props = explore(POOL, SCORES, 4, ExplorationStage(policy="greedy"), request_rng(0, "r", "u"))
    assert items.tolist() == [100, 101, 102, 103] and props is None


def test_epsilon_greedy_propensities_follow_the_formula() -> None:
    eps, m, k = 0.2, len(POOL), 4
    rng = np.random.default_rng(0)
    hits = 0
    stage = ExplorationStage(policy="epsilon_greedy", epsilon=eps)
    for _ in range(2000):
        items, props = explore(POOL, SCORES, k, stage, rng)
        assert props is not None
        on_top = items == POOL[:k]
        assert np.allclose(props[on_top], 1 - eps + eps / m) and np.allclose(props[~on_top], eps / m)
        hits += int(items[0] == POOL[0])
    # P(slot 1 shows the greedy item) is that item's propensity; each slot's π sums to 1 over the pool
    assert abs(hits / 2000 - (1 - eps + eps / m)) < 0.03
    assert np.isclose((1 - eps + eps / m) + (m - 1) * eps / m, 1.0)


def test_softmax_per_slot_propensities_match_frequencies() -> None:
    """Softmax serves its sample in score order, so an item's slot depends on what else was drawn: the served
    propensity is P(item at this slot), which must match how often the item lands in that slot. (It used to be
    the inclusion probability, P(item anywhere on the slate); summed over a slate's slots per item it still is.)"""
    k, temperature = 3, 0.7
    stage = ExplorationStage(policy="softmax", temperature=temperature)
    rng = np.random.default_rng(1)
    counts = np.zeros((len(POOL), k))
    reported = np.full((len(POOL), k), np.nan)
    draws = 3000
    for _ in range(draws):
        items, props = explore(POOL, SCORES, k, stage, rng)
        assert props is not None and len(set(items.tolist())) == k
        idx = items - POOL[0]
        counts[idx, np.arange(k)] += 1
        assert np.all(np.isnan(reported[idx, np.arange(k)]) | np.isclose(reported[idx, np.arange(k)], props))
        reported[idx, np.arange(k)] = props
        assert np.all(np.diff(SCORES[idx]) <= 0)  # shown in score order
    seen = ~np.isnan(reported)
    assert np.allclose(counts[seen] / draws, reported[seen], atol=0.035)
    assert np.allclose(np.nansum(reported, axis=0), 1.0)  # every slot's propensities sum to 1 over the pool


def test_same_request_same_draw() -> None:
    stage = ExplorationStage(policy="softmax", temperature=2.0)
    a = explore(POOL, SCORES, 5, stage, request_rng(3, "req-1", "u1"))
    b = explore(POOL, SCORES, 5, stage, request_rng(3, "req-1", "u1"))
    assert a[0].tolist() == b[0].tolist()


def test_softmax_with_unscored_items_still_gives_probabilities() -> None:
    stage = ExplorationStage(policy="softmax", temperature=1.0)
    items, props = explore(POOL[:4], np.array([-np.inf] * 4), 2, stage, np.random.default_rng(0))
    assert props is not None and len(items) == 2 and np.allclose(props, 0.5)  # 1/2 at each slot
    items, props = explore(POOL[:4], np.array([1.0, -np.inf, 0.5, -np.inf]), 3, stage, np.random.default_rng(0))
    assert props is not None and len(set(items.tolist())) == 3 and np.all((props > 0) & (props <= 1))


@settings(max_examples=60, deadline=None)
@given(
    scores=st.lists(st.floats(-20, 20, allow_nan=False), min_size=1, max_size=30),
    k=st.integers(1, 10),
    policy=st.sampled_from(["epsilon_greedy", "softmax"]),
    seed=st.integers(0, 10_000),
)
def test_propensities_are_probabilities(scores: list[float], k: int, policy: str, seed: int) -> None:
    order = np.argsort(-np.asarray(scores), kind="stable")
    pool, ordered = np.arange(len(scores))[order], np.asarray(scores)[order]
    stage = ExplorationStage(policy=policy, epsilon=0.3, temperature=0.5)  # type: ignore[arg-type]
    items, props = explore(pool, ordered, k, stage, np.random.default_rng(seed))
    assert props is not None
    assert len(items) == min(k, len(pool)) == len(set(items.tolist()))
    assert np.all(props > 0) and np.all(props <= 1 + 1e-12)
