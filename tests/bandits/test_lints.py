"""Linear TS: Monte-Carlo propensities converge to the Gaussian closed form for two arms."""

import numpy as np
from scipy.stats import norm

from rankstack.bandits.learning import BanditContext
from rankstack.bandits.lints import LinTS
from rankstack.bandits.policy import Slates


def test_monte_carlo_propensity_converges_and_sums_to_one() -> None:
    policy = LinTS(2, 1, v=1.0, propensity_samples=8_000)
    items = np.array([[0], [0], [1]])
    ctx = BanditContext(np.ones((3, 1)), np.zeros((2, 1)))
    policy.update(items, Slates(items, items, np.ones((3, 1))), np.array([[1.0], [1.0], [0.0]]), ctx)
    # arm 0: A = 3, θ = 2/3; arm 1: A = 2, θ = 0 → P(arm 0 first) = Φ((2/3) / √(1/3 + 1/2))
    exact = norm.cdf((2 / 3) / np.sqrt(1 / 3 + 1 / 2))
    one = BanditContext(np.ones((1, 1)), np.zeros((2, 1)))
    dist = policy.action_dist(np.array([[0, 1]]), np.zeros((1, 2)), 1, context=one)
    assert abs(dist[0, 0, 0] - exact) < 4 * np.sqrt(exact * (1 - exact) / 8_000)
    np.testing.assert_allclose(dist.sum(axis=1), 1.0)
    np.testing.assert_allclose(policy.model.theta[:, 0], [2 / 3, 0.0])
