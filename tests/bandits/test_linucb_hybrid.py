"""Hybrid LinUCB: Algorithm 2 of Li et al. (2010) step by step, the disjoint special case, propensity 1."""

import numpy as np
import pytest

from rankstack.bandits.learning import BanditContext
from rankstack.bandits.linucb import LinUCB
from rankstack.bandits.linucb_hybrid import HybridLinUCB
from rankstack.bandits.policy import Slates


class Algorithm2:
    """The paper's Algorithm 2, literally: one observation at a time, A₀ and b₀ updated in place."""

    def __init__(self, n_arms: int, d: int, k: int, alpha: float) -> None:
        self.alpha = alpha
        self.a0, self.b0 = np.eye(k), np.zeros(k)
        self.a = [np.eye(d) for _ in range(n_arms)]
        self.bm = [np.zeros((d, k)) for _ in range(n_arms)]
        self.b = [np.zeros(d) for _ in range(n_arms)]

    def add(self, arm: int, x: np.ndarray, z: np.ndarray, r: float) -> None:
        ai = np.linalg.inv(self.a[arm])
        self.a0 += self.bm[arm].T @ ai @ self.bm[arm]
        self.b0 += self.bm[arm].T @ ai @ self.b[arm]
        self.a[arm] += np.outer(x, x)
        self.bm[arm] += np.outer(x, z)
        self.b[arm] += r * x
        ai = np.linalg.inv(self.a[arm])
        self.a0 += np.outer(z, z) - self.bm[arm].T @ ai @ self.bm[arm]
        self.b0 += r * z - self.bm[arm].T @ ai @ self.b[arm]

    def score(self, arm: int, x: np.ndarray, z: np.ndarray) -> float:
        a0i = np.linalg.inv(self.a0)
        beta = a0i @ self.b0
        ai = np.linalg.inv(self.a[arm])
        theta = ai @ (self.b[arm] - self.bm[arm] @ beta)
        bm = self.bm[arm]
        s = z @ a0i @ z - 2 * z @ a0i @ bm.T @ ai @ x + x @ ai @ x + x @ ai @ bm @ a0i @ bm.T @ ai @ x
        return float(z @ beta + x @ theta + self.alpha * np.sqrt(s))


def _data(seed: int, n: int, n_arms: int, d: int, dy: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    return (rng.integers(0, n_arms, n), rng.normal(size=(n, d)), rng.normal(size=(n_arms, dy)),
            (rng.random(n) < 0.3).astype(float))


def test_a_batch_update_equals_algorithm_2_one_observation_at_a_time() -> None:
    n_arms, d, dy = 4, 3, 2
    arms, x, y, r = _data(0, 40, n_arms, d, dy)
    ours = HybridLinUCB(n_arms, d, dy, alpha=0.7)
    ours.observe(arms[:25], x[:25], y[arms[:25]], r[:25])  # two batches
    ours.observe(arms[25:], x[25:], y[arms[25:]], r[25:])
    ref = Algorithm2(n_arms, d, d * dy, alpha=0.7)
    for i in range(40):
        ref.add(int(arms[i]), x[i], np.outer(x[i], y[arms[i]]).ravel(), float(r[i]))
    xs = np.random.default_rng(1).normal(size=(3, d))
    pool = np.tile(np.arange(n_arms), (3, 1))
    got = ours.ucb(pool, BanditContext(xs, y))
    want = [[ref.score(a, xs[t], np.outer(xs[t], y[a]).ravel()) for a in range(n_arms)] for t in range(3)]
    np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-10)


def test_one_batch_equals_many_small_batches() -> None:
    arms, x, y, r = _data(2, 60, 5, 3, 3)
    whole, parts = HybridLinUCB(5, 3, 3, alpha=0.3), HybridLinUCB(5, 3, 3, alpha=0.3)
    whole.observe(arms, x, y[arms], r)
    for i in range(0, 60, 7):
        parts.observe(arms[i : i + 7], x[i : i + 7], y[arms[i : i + 7]], r[i : i + 7])
    ctx = BanditContext(x[:4], y)
    pool = np.tile(np.arange(5), (4, 1))
    np.testing.assert_allclose(whole.ucb(pool, ctx), parts.ucb(pool, ctx), rtol=1e-9)


def test_without_arm_features_it_is_disjoint_linucb() -> None:
    arms, x, _y, r = _data(3, 50, 4, 3, 0)
    ctx = BanditContext(x, np.zeros((4, 0)))
    hybrid, disjoint = HybridLinUCB(4, 3, 0, alpha=0.5), LinUCB(4, 3, alpha=0.5)
    items = arms[:, None]
    slates = Slates(items, np.zeros_like(items), np.ones(items.shape))
    pool = np.tile(np.arange(4), (50, 1))
    hybrid.update(pool, slates, r[:, None], ctx)
    disjoint.update(pool, slates, r[:, None], ctx)
    np.testing.assert_allclose(hybrid.ucb(pool, ctx), disjoint.ucb(pool, ctx), rtol=1e-9)


def test_the_slate_is_the_top_ucb_with_propensity_one_and_pad_never_shown() -> None:
    arms, x, y, r = _data(4, 30, 6, 2, 2)
    policy = HybridLinUCB(6, 2, 2, alpha=0.2)
    policy.observe(arms, x, y[arms], r)
    pool = np.array([[5, -1, 2, 0, 4], [1, 3, -1, -1, 0]])
    ctx = BanditContext(x[:2], y)
    slates = policy.choose(pool, np.zeros(pool.shape), 3, np.random.default_rng(0), context=ctx)
    ucb = policy.ucb(pool, ctx)
    for row in range(2):
        want = pool[row, np.argsort(-ucb[row], kind="stable")[:3]]
        np.testing.assert_array_equal(slates.items[row], want)
    assert (slates.items >= 0).all()
    np.testing.assert_array_equal(slates.propensity, np.ones((2, 3)))
    dist = policy.action_dist(pool, np.zeros(pool.shape), 3, context=ctx)
    np.testing.assert_array_equal(dist.sum(axis=1), np.ones((2, 3)))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"alpha": -1.0}, "alpha must be >= 0"),
    ({"ridge": 0.0}, "ridges > 0"),
    ({"shared_ridge": -2.0}, "ridges > 0"),
])
def test_bad_settings_are_named(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HybridLinUCB(2, 2, 2, **kwargs)


def test_no_context_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="linucb_hybrid is contextual"):
        HybridLinUCB(2, 1, 1).choose(np.array([[0, 1]]), np.zeros((1, 2)), 1, np.random.default_rng(0))
