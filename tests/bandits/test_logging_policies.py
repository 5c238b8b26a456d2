"""Logging policies: π sums to 1 per slot, logged propensities equal π, and sampled frequencies match π."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from rankstack.bandits.draws import uniform_slates
from rankstack.bandits.exploration import capped_inclusion
from rankstack.bandits.logging_policies import LoggingPolicy, logging_policy
from rankstack.simulation import MarketplaceSimulator, PolicyConfig, Requests, SimulatorConfig

CFG = SimulatorConfig(n_users=50, n_items=12, n_impressions=100, slate_size=3)
KINDS = ["uniform", "epsilon_greedy", "softmax"]


def _setup(kind: str, score: str = "affinity") -> tuple[LoggingPolicy, Requests]:
    cfg = CFG.model_copy(update={"policy": PolicyConfig(kind=kind, score=score, epsilon=0.3, temperature=0.7)})
    sim = MarketplaceSimulator(cfg)
    return logging_policy(sim), sim.draw_requests(40, np.random.default_rng(0))


@pytest.mark.parametrize("kind", KINDS)
def test_action_dist_sums_to_one_over_the_choice_set(kind: str) -> None:
    policy, req = _setup(kind)
    eligible = np.ones(CFG.n_items, dtype=bool)
    eligible[[2, 7]] = False
    dist = policy.action_dist(req, eligible)
    assert dist.shape == (40, CFG.n_items, CFG.slate_size)
    np.testing.assert_allclose(dist.sum(axis=1), 1.0, atol=1e-9)
    assert (dist[:, [2, 7], :] == 0).all()
    items, prop = policy.choose(req, eligible, np.random.default_rng(1))
    assert not np.isin(items, [2, 7]).any()
    slots = np.broadcast_to(np.arange(CFG.slate_size), items.shape)
    np.testing.assert_allclose(prop, dist[np.arange(40)[:, None], items, slots], rtol=1e-9)


@pytest.mark.parametrize(("kind", "score"), [("uniform", "affinity"), ("epsilon_greedy", "popularity"),
                                             ("softmax", "affinity")])
def test_sampled_slot_frequencies_match_the_propensities(kind: str, score: str) -> None:
    policy, req = _setup(kind, score)
    one = req.take(np.zeros(20_000, dtype=np.int64))  # the same request, many times
    eligible = np.ones(CFG.n_items, dtype=bool)
    items, _ = policy.choose(one, eligible, np.random.default_rng(2))
    dist = policy.action_dist(one.take(slice(0, 1)), eligible)[0]  # [n_items, k]
    for slot in range(CFG.slate_size):
        freq = np.bincount(items[:, slot], minlength=CFG.n_items) / len(items)
        se = np.sqrt(dist[:, slot] * (1 - dist[:, slot]) / len(items))
        assert (np.abs(freq - dist[:, slot]) <= 4.5 * se + 1e-9).all(), (slot, freq, dist[:, slot])
    assert (np.sort(items, axis=1)[:, 1:] != np.sort(items, axis=1)[:, :-1]).all()


def test_too_few_eligible_items_is_an_error() -> None:
    policy, req = _setup("softmax")
    eligible = np.zeros(CFG.n_items, dtype=bool)
    eligible[:2] = True
    with pytest.raises(ValueError, match="eligible"):
        policy.choose(req, eligible, np.random.default_rng(0))


@settings(max_examples=50, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 5), st.integers(3, 15)), elements=st.floats(0.0, 30.0)),
       st.integers(1, 3))
def test_capped_inclusion_sums_to_k_and_stays_in_unit_range(logits: np.ndarray, k: int) -> None:
    weights = np.exp(logits)
    pi = capped_inclusion(weights, k)
    np.testing.assert_allclose(pi.sum(axis=1), k, rtol=1e-9)
    assert (pi >= 0).all() and (pi <= 1 + 1e-12).all()
    order = np.argsort(weights, axis=1)
    assert (np.diff(np.take_along_axis(pi, order, axis=1), axis=1) >= -1e-12).all()  # monotone in weight


def test_uniform_slates_are_distinct_in_both_regimes() -> None:
    rng = np.random.default_rng(0)
    for m in (4, 200):
        slates = uniform_slates(1_000, np.arange(m) * 2, 3, rng)
        assert (np.sort(slates, 1)[:, 1:] != np.sort(slates, 1)[:, :-1]).all() and (slates % 2 == 0).all()
