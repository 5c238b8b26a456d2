"""Logistic TS: the Laplace update's mode is stationary, its precision follows the formula, it learns."""

import numpy as np
from scipy.special import expit

from rankstack.bandits.learning import BanditContext
from rankstack.bandits.logistic_ts import LogisticTS, laplace_update


def test_the_laplace_mode_is_stationary_and_the_precision_follows_its_formula() -> None:
    rng = np.random.default_rng(0)
    phi = rng.standard_normal((300, 3))
    r = (rng.random(300) < expit(phi @ np.array([1.0, -2.0, 0.5]))).astype(float)
    m, q = np.array([0.1, 0.0, -0.1]), np.array([1.0, 2.0, 0.5])
    w, q_new = laplace_update(m, q, phi, r)
    grad = q * (w - m) + phi.T @ (expit(phi @ w) - r)
    assert np.abs(grad).max() < 1e-3
    p = expit(phi @ w)
    np.testing.assert_allclose(q_new, q + (phi**2 * (p * (1 - p))[:, None]).sum(axis=0))
    assert np.sign(w).tolist() == [1.0, -1.0, 1.0]


def test_policy_learns_the_better_arm_and_propensities_are_distributions() -> None:
    rng = np.random.default_rng(1)
    policy = LogisticTS(1, 3, propensity_samples=200)
    ctx = BanditContext(np.ones((200, 1)), np.eye(3))
    pool = np.broadcast_to(np.arange(3), (200, 3))
    truth = np.array([0.1, 0.5, 0.2])
    for _ in range(5):
        slates = policy.choose(pool, np.zeros(pool.shape), 1, rng, context=ctx)
        clicks = (rng.random(slates.items.shape) < truth[slates.items]).astype(float)
        policy.update(pool, slates, clicks, ctx)
    assert np.argmax(policy.m) == 1
    dist = policy.action_dist(pool[:2], np.zeros((2, 3)), 2, context=BanditContext(np.ones((2, 1)), np.eye(3)))
    np.testing.assert_allclose(dist.sum(axis=1), 1.0)
