"""NeuralLinear over a learned φ: retrained on schedule, posterior = closed form over the buffer's φ, it learns."""

import numpy as np
import pytest
import torch

from rankstack.bandits.learning import BanditContext
from rankstack.bandits.neural_linear_learned import LearnedNeuralLinear
from rankstack.bandits.policy import Slates


def _world(seed: int, n: int, n_arms: int = 6) -> tuple[BanditContext, np.ndarray]:
    rng = np.random.default_rng(seed)
    return BanditContext(rng.normal(size=(n, 3)), rng.normal(size=(n_arms, 2))), np.tile(np.arange(n_arms), (n, 1))


def _feed(policy: LearnedNeuralLinear, seed: int, batches: int, n: int = 40) -> None:
    rng = np.random.default_rng(seed)
    for b in range(batches):
        ctx, pool = _world(seed * 100 + b, n)
        slates = policy.choose(pool, np.zeros(pool.shape), 2, rng, context=ctx)
        # arm 3 is clicked when the first round feature is positive: a rule the network has to learn
        rewards = ((slates.items == 3) & (ctx.rounds[:, :1] > 0)).astype(float)
        policy.update(pool, slates, rewards, ctx)


def test_it_retrains_every_n_rounds_and_the_posterior_is_the_closed_form_over_the_buffer() -> None:
    torch.set_num_threads(1)
    policy = LearnedNeuralLinear(6, 3, 2, width=8, retrain_every=80, ridge=2.0, seed=0)
    _feed(policy, 1, 4)  # 4 updates of 40 rounds: retrains at the 1st and the 3rd (80 rounds later)
    assert policy.retrains == 2
    phi = policy.phi(policy.xy, policy.arms)
    # the 3rd update rebuilt the posterior under the new φ; the 4th added its rows in closed form
    a = 2.0 * np.eye(8) + phi.T @ phi
    np.testing.assert_allclose(policy.a, a, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(policy.theta, np.linalg.solve(a, phi.T @ policy.rewards), rtol=1e-4, atol=1e-6)


def test_the_buffer_is_bounded() -> None:
    policy = LearnedNeuralLinear(6, 3, 2, width=4, retrain_every=1000, buffer=150, seed=0)
    _feed(policy, 3, 3)
    assert len(policy.rewards) == len(policy.arms) == len(policy.xy) == 150


def test_it_learns_a_context_dependent_rule() -> None:
    torch.set_num_threads(1)
    policy = LearnedNeuralLinear(6, 3, 2, width=16, retrain_every=200, epochs=30, lr=1e-2, seed=0)
    _feed(policy, 2, 20)
    ctx, pool = _world(999, 200)
    mean = policy.mean(pool, ctx)
    pos = ctx.rounds[:, 0] > 0
    assert (mean[pos].argmax(axis=1) == 3).mean() > 0.8
    assert mean[pos, 3].mean() > mean[~pos, 3].mean() + 0.3


def test_propensities_are_distributions_and_pad_is_never_shown() -> None:
    policy = LearnedNeuralLinear(6, 3, 2, width=8, propensity_samples=50, seed=0)
    ctx, pool = _world(5, 4)
    pool[0, 2] = -1
    slates = policy.choose(pool, np.zeros(pool.shape), 2, np.random.default_rng(0), context=ctx)
    assert (slates.items >= 0).all() and ((slates.propensity > 0) & (slates.propensity <= 1)).all()
    dist = policy.action_dist(pool, np.zeros(pool.shape), 2, context=ctx)
    np.testing.assert_allclose(dist.sum(axis=1), 1.0)
    assert (dist[0, 2] == 0).all()


def test_it_needs_context_and_checks_its_settings() -> None:
    with pytest.raises(ValueError, match="neural_linear_learned is contextual"):
        LearnedNeuralLinear(2, 1, 1).update(np.array([[0]]), Slates(np.array([[0]]), np.array([[0]]),
                                                                    np.ones((1, 1))), np.ones((1, 1)))
    with pytest.raises(ValueError, match="retrain_every"):
        LearnedNeuralLinear(2, 1, 1, retrain_every=0)
