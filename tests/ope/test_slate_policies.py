"""Prefix and conditional probabilities of the uniform and ε-greedy policies, against their enumerated slate laws
and against ``rankstack.bandits``' own action_dist."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from rankstack.bandits import EpsilonGreedy, Uniform
from rankstack.ope.slate_inputs import SlateLog, slate_target
from rankstack.ope.slate_policies import epsilon_greedy_cascade, epsilon_greedy_conditional, uniform_cascade

M, K, EPS = 4, 3, 0.3
SLATES = np.array(list(itertools.permutations(range(M), K)))
GREEDY = np.array([2, 0, 3])


def law() -> np.ndarray:
    """P(s) of ε-greedy over every slate: (1 − ε)·1[s = g] + ε / (m (m−1) (m−2))."""
    return (1 - EPS) * (SLATES == GREEDY).all(axis=1) + EPS / len(SLATES)


def test_uniform_cascade() -> None:
    assert np.allclose(uniform_cascade(4, 3, 2), [[1 / 4, 1 / 12, 1 / 24]] * 2)
    assert np.allclose(uniform_cascade(np.array([3, 5]), 2), [[1 / 3, 1 / 6], [1 / 5, 1 / 20]])
    with pytest.raises(ValueError, match="needs at least 3 actions"):
        uniform_cascade(2, 3)


def test_epsilon_greedy_prefixes_match_the_enumeration() -> None:
    p = law()
    want = np.array([[p[(SLATES[:, : k + 1] == s[: k + 1]).all(axis=1)].sum() for k in range(K)] for s in SLATES])
    got = epsilon_greedy_cascade(SLATES, np.tile(GREEDY, (len(SLATES), 1)), EPS, M)
    assert np.allclose(got, want)


def test_epsilon_greedy_conditionals_match_the_enumeration() -> None:
    p = law()
    cond = epsilon_greedy_conditional(SLATES, np.tile(GREEDY, (len(SLATES), 1)), EPS, M)
    for i, s in enumerate(SLATES):
        for k in range(K):
            hit = (SLATES[:, :k] == s[:k]).all(axis=1)
            want = np.array([p[hit & (SLATES[:, k] == a)].sum() for a in range(M)]) / p[hit].sum()
            assert np.allclose(cond[i, :, k], want), (s, k)


def test_the_helpers_agree_with_the_bandit_policies() -> None:
    """slate_target accepts them beside the policies' action_dist (it checks slot 0 and the chained product)."""
    pool = np.tile(np.arange(M), (len(SLATES), 1))
    scores = np.tile(-np.argsort([*GREEDY.tolist(), 1]).astype(float), (len(SLATES), 1))
    greedy = np.tile(GREEDY, (len(SLATES), 1))
    log = SlateLog(rewards=np.zeros((len(SLATES), K)), positions=SLATES,
                   pscore=Uniform().action_dist(pool, scores, K)[0, 0, 0] * np.ones((len(SLATES), K)),
                   pscore_cascade=uniform_cascade(M, K, len(SLATES)))
    dist = EpsilonGreedy(EPS).action_dist(pool, scores, K)
    target = slate_target(log, action_dist=dist, cascade=epsilon_greedy_cascade(SLATES, greedy, EPS, M),
                          reward_model=np.zeros((len(SLATES), M, K)),
                          conditional_dist=epsilon_greedy_conditional(SLATES, greedy, EPS, M))
    assert np.allclose(target.pscore, EPS / M + (1 - EPS) * (SLATES == GREEDY))


def test_a_prefix_the_greedy_policy_never_shows_gets_a_valid_law() -> None:
    cond = epsilon_greedy_conditional(SLATES[:3], np.tile(GREEDY, (3, 1)), 0.0, M)
    assert np.allclose(cond.sum(axis=1), 1.0) and np.isfinite(cond).all()
