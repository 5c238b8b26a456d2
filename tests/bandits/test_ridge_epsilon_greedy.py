"""ε-greedy over the ridge: propensities by hand, and equal to action_dist."""

import numpy as np

from rankstack.bandits.learning import BanditContext
from rankstack.bandits.policy import Slates
from rankstack.bandits.ridge_epsilon_greedy import RidgeEpsilonGreedy


def test_propensities_match_the_definition() -> None:
    policy = RidgeEpsilonGreedy(4, 1, epsilon=0.2)
    ctx = BanditContext(np.ones((1, 1)), np.zeros((4, 1)))
    items = np.array([[2, 0]])
    policy.update(items, Slates(items, items, np.ones((1, 2))), np.array([[1.0, 0.0]]), ctx)
    pool = np.array([[0, 1, 2, 3]])
    dist = policy.action_dist(pool, np.zeros((1, 4)), 2, context=ctx)
    # greedy: item 2 (θ = 0.5) first, then item 0 (θ = 0, the earliest of the ties); ε / 4 = 0.05 elsewhere
    np.testing.assert_allclose(dist[0, :, 0], [0.05, 0.05, 0.85, 0.05])
    np.testing.assert_allclose(dist[0, :, 1], [0.85, 0.05, 0.05, 0.05])
    many = np.repeat(pool, 50, axis=0)
    slates = policy.choose(many, np.zeros(many.shape), 2, np.random.default_rng(0),
                           context=BanditContext(np.ones((50, 1)), ctx.arms))
    np.testing.assert_allclose(slates.propensity, dist[0][slates.positions, np.arange(2)])
