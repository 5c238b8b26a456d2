"""NeuralLinear: the online posterior equals the closed form over φ = x ⊗ y; propensities are distributions."""

import numpy as np

from rankstack.bandits.learning import BanditContext
from rankstack.bandits.neural_linear import NeuralLinear


def test_online_updates_equal_the_closed_form_posterior() -> None:
    rng = np.random.default_rng(0)
    ctx = BanditContext(rng.standard_normal((40, 2)), rng.standard_normal((5, 3)))
    pool = np.broadcast_to(np.arange(5), (40, 5))
    policy = NeuralLinear(2, 3, ridge=1.5, propensity_samples=50)
    phis, rewards = [], []
    for part in np.array_split(np.arange(40), 4):
        sub = BanditContext(ctx.rounds[part], ctx.arms)
        slates = policy.choose(pool[part], np.zeros((len(part), 5)), 2, rng, context=sub)
        r = rng.integers(0, 2, slates.items.shape).astype(float)
        policy.update(pool[part], slates, r, sub)
        for i, row in enumerate(part):
            for slot in range(2):
                phis.append(np.outer(ctx.rounds[row], ctx.arms[slates.items[i, slot]]).ravel())
                rewards.append(r[i, slot])
    phi = np.array(phis)
    a_mat = 1.5 * np.eye(6) + phi.T @ phi
    np.testing.assert_allclose(policy.a, a_mat)
    np.testing.assert_allclose(policy.theta, np.linalg.solve(a_mat, phi.T @ np.array(rewards)))
    dist = policy.action_dist(pool[:3], np.zeros((3, 5)), 2, context=BanditContext(ctx.rounds[:3], ctx.arms))
    np.testing.assert_allclose(dist.sum(axis=1), 1.0)
    np.testing.assert_allclose(dist.sum(axis=2).sum(axis=1), 2.0)
