"""The logging-policy self-check on simulated arrays from the bandits policies: right propensities pass, the
inclusion probability logged in place of the per-slot propensity fails."""

from __future__ import annotations

import numpy as np
import pytest

from rankstack.bandits import EpsilonGreedy, Softmax, inclusion
from rankstack.ope.sanity import logging_policy_check


@pytest.mark.parametrize("policy", [Softmax(0.5), EpsilonGreedy(0.3)], ids=["softmax", "epsilon_greedy"])
def test_self_check_on_a_policy_log(policy):
    rng = np.random.default_rng(0)
    rounds, pool_size, k = 600, 8, 3
    pool = np.tile(np.arange(pool_size), (rounds, 1))
    scores = rng.normal(size=(rounds, pool_size))
    slates = policy.choose(pool, scores, k, np.random.default_rng(1))
    dist = policy.action_dist(pool, scores, k)
    click = 0.05 + 0.4 * (np.arange(pool_size) % 2)  # odd items click often
    reward = (rng.random((rounds, k)) < click[slates.items]).astype(float).ravel()
    rows, slots = np.repeat(np.arange(rounds), k), np.tile(np.arange(k), rounds)
    recomputed = dist[rows, slates.positions.ravel(), slots]
    good = logging_policy_check(reward, recomputed, slates.propensity.ravel())
    assert good.passed, good
    if isinstance(policy, EpsilonGreedy):  # (softmax orders its draw by score: inclusion ≈ per-slot there)
        wrong = np.minimum(inclusion(dist, slates.positions).ravel(), 1.0)  # a bug: inclusion logged instead
        assert not logging_policy_check(reward, recomputed, wrong).passed


@pytest.mark.parametrize(("args", "message"), [
    ((np.ones(3), np.ones(2), np.ones(3)), "one length"),
    ((np.ones(3), np.ones(3), np.array([0.5, 0.0, 1.0])), r"pscore\[1\]"),
])
def test_bad_arguments(args, message):
    with pytest.raises(ValueError, match=message):
        logging_policy_check(*args)
