"""SquareCB: IGW probabilities by hand, exact per-slot propensities, strata, slot frequencies."""

import numpy as np

from rankstack.bandits.learning import BanditContext
from rankstack.bandits.policy import Slates
from rankstack.bandits.squarecb import SquareCB, igw


def test_igw_matches_its_formula_by_hand() -> None:
    p = igw(np.array([[0.5, 0.3, 0.0]]), np.ones((1, 3), dtype=bool), gamma=10.0)
    # K = 3: p = 1/(3 + 10·0.2) = 0.2, 1/(3 + 10·0.5) = 0.125, best gets the rest
    np.testing.assert_allclose(p, [[0.675, 0.2, 0.125]])
    ties = igw(np.zeros((1, 4)), np.array([[True, True, True, False]]), gamma=5.0)
    np.testing.assert_allclose(ties, [[1 / 3, 1 / 3, 1 / 3, 0.0]])


def _trained() -> tuple[SquareCB, BanditContext]:
    policy = SquareCB(6, 1, gamma=20.0)
    items = np.array([[0, 1, 2, 3, 4, 5]])
    ctx = BanditContext(np.ones((1, 1)), np.zeros((6, 1)))
    policy.update(items, Slates(items, items, np.ones(items.shape)), np.array([[1.0, 0.8, 0.6, 0.4, 0.2, 0.0]]), ctx)
    return policy, ctx


def test_strata_are_by_rank_and_propensities_are_exact() -> None:
    policy, ctx = _trained()
    pool = np.array([[5, 4, 3, 2, 1, 0]])
    dist = policy.action_dist(pool, np.zeros(pool.shape), 2, context=ctx)
    np.testing.assert_allclose(dist.sum(axis=1), 1.0)
    pred = policy.predict(pool, ctx)[0]
    # slot 0 holds ranks 0, 2, 4 = items 0, 2, 4 = pool positions 5, 3, 1; γ_0 = 20
    k0 = 1 / (3 + 20 * (pred[5] - pred[[3, 1]]))
    np.testing.assert_allclose(dist[0, [3, 1], 0], k0)
    assert dist[0, [0, 2, 4], 0].sum() == 0
    k1 = 1 / (3 + 10 * (pred[4] - pred[[2, 0]]))  # slot 1: γ / 2 over items 1, 3, 5
    np.testing.assert_allclose(dist[0, [2, 0], 1], k1)
    rng = np.random.default_rng(0)
    counts = np.zeros((6, 2))
    many = np.repeat(pool, 4000, axis=0)
    slates = policy.choose(many, np.zeros(many.shape), 2, rng, context=BanditContext(np.ones((4000, 1)), ctx.arms))
    for slot in range(2):
        counts[:, slot] = np.bincount(slates.positions[:, slot], minlength=6) / 4000
    np.testing.assert_allclose(counts, dist[0], atol=0.03)
    np.testing.assert_allclose(slates.propensity, dist[0][slates.positions, np.arange(2)])


def test_pad_is_never_chosen_and_short_pools_get_short_slates() -> None:
    policy, ctx = _trained()
    pool = np.array([[0, -1, 2, -1, -1, -1]])
    slates = policy.choose(pool, np.zeros(pool.shape), 3, np.random.default_rng(0), context=ctx)
    assert set(slates.items[0, :2]) == {0, 2} and slates.items[0, 2] == -1 and np.isnan(slates.propensity[0, 2])
