"""Exploration: propensities in (0, 1], matching the empirical frequencies, reproducible per request."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rankstack.pipeline.config import ExplorationStage
from rankstack.pipeline.policy import epsilon_greedy, explore, request_rng, softmax_sample

POOL = np.arange(100, 112)
SCORES = np.linspace(3.0, 0.0, len(POOL))


def test_greedy_is_the_top_k_without_propensity() -> None:
    items, props = explore(POOL, SCORES, 4, ExplorationStage(policy="greedy"), request_rng(0, "r", "u"))
    assert items.tolist() == [100, 101, 102, 103] and props is None


def test_epsilon_greedy_propensities_follow_the_formula() -> None:
    eps, m, k = 0.2, len(POOL), 4
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(2000):
        items, props = epsilon_greedy(POOL, k, eps, rng)
        on_top = items == POOL[:k]
        assert np.allclose(props[on_top], 1 - eps + eps / m) and np.allclose(props[~on_top], eps / m)
        hits += int(items[0] == POOL[0])
    # P(slot 1 shows the greedy item) is that item's propensity; each slot's π sums to 1 over the pool
    assert abs(hits / 2000 - (1 - eps + eps / m)) < 0.03
    assert np.isclose((1 - eps + eps / m) + (m - 1) * eps / m, 1.0)


def test_softmax_inclusion_probabilities_match_frequencies_and_sum_to_k() -> None:
    k, temperature = 3, 0.7
    rng = np.random.default_rng(1)
    counts = np.zeros(len(POOL))
    reported = np.full(len(POOL), np.nan)
    draws = 3000
    for _ in range(draws):
        items, props = softmax_sample(POOL, SCORES, k, temperature, rng)
        assert len(set(items.tolist())) == k
        idx = items - POOL[0]
        counts[idx] += 1
        assert np.all(np.isnan(reported[idx]) | np.isclose(reported[idx], props))
        reported[idx] = props
        assert np.all(np.diff(SCORES[idx]) <= 0)  # shown in score order
    seen = ~np.isnan(reported)
    assert np.allclose(counts[seen] / draws, reported[seen], atol=0.035)
    assert reported[seen].sum() <= k + 1e-9


def test_same_request_same_draw() -> None:
    stage = ExplorationStage(policy="softmax", temperature=2.0)
    a = explore(POOL, SCORES, 5, stage, request_rng(3, "req-1", "u1"))
    b = explore(POOL, SCORES, 5, stage, request_rng(3, "req-1", "u1"))
    assert a[0].tolist() == b[0].tolist()


def test_softmax_with_unscored_items_still_gives_probabilities() -> None:
    items, props = softmax_sample(POOL[:4], np.array([-np.inf] * 4), 2, 1.0, np.random.default_rng(0))
    assert len(items) == 2 and np.allclose(props, 0.5)
    items, props = softmax_sample(POOL[:4], np.array([1.0, -np.inf, 0.5, -np.inf]), 3, 1.0, np.random.default_rng(0))
    assert len(set(items.tolist())) == 3 and np.all((props > 0) & (props <= 1))


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


@given(st.integers(0, 2**31), st.text(max_size=20), st.text(min_size=1, max_size=20))
def test_request_draws_repeat_for_the_same_request(seed: int, request_id: str, user_id: str) -> None:
    a, b = request_rng(seed, request_id, user_id), request_rng(seed, request_id, user_id)
    draws = [a.random(), a.random(), float(a.generator().random())]
    assert draws == [b.random(), b.random(), float(b.generator().random())]
    assert all(0.0 <= d < 1.0 for d in draws)


def test_first_draws_are_uniform_across_requests() -> None:
    first = np.array([request_rng(0, f"r{i}", "u").random() for i in range(20_000)])
    assert abs(first.mean() - 0.5) < 0.01 and abs((first < 0.05).mean() - 0.05) < 0.006
    assert len(np.unique(first)) == len(first)
