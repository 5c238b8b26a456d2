"""LinUCB: the UCB formula, greedy one-hot propensities, ties to the earlier pool position."""

import numpy as np
import pytest

from rankstack.bandits.learning import BanditContext
from rankstack.bandits.linucb import LinUCB
from rankstack.bandits.policy import Slates


def test_ucb_matches_its_formula_by_hand() -> None:
    policy = LinUCB(2, 1, alpha=2.0, ridge=1.0)
    items = np.array([[0]])
    ctx = BanditContext(np.array([[1.0]]), np.zeros((2, 1)))
    policy.update(items, Slates(items, items, np.ones((1, 1))), np.array([[1.0]]), ctx)
    # arm 0: A = 1 + 1 = 2, b = 1, θ = 0.5, bonus 2·√(1/2); arm 1: θ = 0, bonus 2·√1
    ucb = policy.ucb(np.array([[0, 1]]), ctx)
    np.testing.assert_allclose(ucb, [[0.5 + 2 * np.sqrt(0.5), 2.0]])


def test_ties_go_to_the_earlier_position_with_propensity_one() -> None:
    policy = LinUCB(4, 2)
    pool = np.array([[3, 1, 2, 0]])
    ctx = BanditContext(np.array([[1.0, 0.0]]), np.zeros((4, 1)))
    slates = policy.choose(pool, np.zeros(pool.shape), 2, np.random.default_rng(0), context=ctx)
    np.testing.assert_array_equal(slates.items, [[3, 1]])
    np.testing.assert_array_equal(slates.propensity, [[1.0, 1.0]])
    dist = policy.action_dist(pool, np.zeros(pool.shape), 2, context=ctx)
    assert dist[0, 0, 0] == 1 and dist[0, 1, 1] == 1 and dist.sum() == 2


def test_contextual_policy_without_context_says_so() -> None:
    with pytest.raises(ValueError, match="linucb is contextual"):
        LinUCB(2, 1).choose(np.array([[0, 1]]), np.zeros((1, 2)), 1, np.random.default_rng(0))
