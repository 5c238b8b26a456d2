"""Bernoulli TS: Beta posteriors from counts, Monte-Carlo propensities that converge to the exact value."""

import numpy as np
from scipy import integrate, stats

from rankstack.bandits.bernoulli_ts import BernoulliTS
from rankstack.bandits.policy import Slates


def test_update_gives_the_beta_posterior() -> None:
    policy = BernoulliTS(3, prior=(1.0, 2.0))
    items = np.array([[0, 1], [0, 2], [1, -1]])
    slates = Slates(items, items, np.ones(items.shape))
    policy.update(items, slates, np.array([[1, 0], [1, 1], [0, 1]]))
    np.testing.assert_allclose(policy.alpha, [3.0, 1.0, 2.0])
    np.testing.assert_allclose(policy.beta, [2.0, 4.0, 2.0])


def _p_first(a: tuple[float, float], b: tuple[float, float]) -> float:
    """P(θ_a > θ_b) for independent Betas, by quadrature."""
    value, _ = integrate.quad(lambda t: stats.beta.pdf(t, *a) * stats.beta.cdf(t, *b), 0, 1)
    return float(value)


def test_monte_carlo_propensity_converges_to_the_exact_one() -> None:
    policy = BernoulliTS(2, propensity_samples=4_000)
    policy.alpha[:] = [5.0, 3.0]
    policy.beta[:] = [5.0, 6.0]
    exact = _p_first((5.0, 5.0), (3.0, 6.0))
    pool = np.array([[0, 1]])
    dist = policy.action_dist(pool, np.zeros(pool.shape), 1, rng=np.random.default_rng(0))
    assert abs(dist[0, 0, 0] - exact) < 4 * np.sqrt(exact * (1 - exact) / 4_000)
    slates = policy.choose(pool, np.zeros(pool.shape), 1, np.random.default_rng(1))
    want = exact if slates.items[0, 0] == 0 else 1 - exact
    assert abs(slates.propensity[0, 0] - want) < 0.04


def test_propensities_sum_to_one_per_slot_and_pad_is_never_shown() -> None:
    policy = BernoulliTS(6, propensity_samples=300)
    pool = np.array([[0, 1, 2, -1, 4, 5], [5, 4, 3, 2, 1, 0]])
    dist = policy.action_dist(pool, np.zeros(pool.shape), 3)
    np.testing.assert_allclose(dist.sum(axis=1), 1.0)
    assert (dist[0, 3] == 0).all()
    slates = policy.choose(pool, np.zeros(pool.shape), 3, np.random.default_rng(0))
    assert (slates.items >= 0).all() and ((slates.propensity > 0) & (slates.propensity <= 1)).all()
    assert BernoulliTS(6, propensity_samples=0).choose(pool[:, :2], np.zeros((2, 2)), 1, np.random.default_rng(0)
                                                       ).propensity.shape == (2, 1)
