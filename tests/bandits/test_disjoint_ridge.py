"""The batched ridge update equals the closed-form posterior, in one batch or many."""

import numpy as np

from rankstack.bandits.disjoint_ridge import DisjointRidge


def test_batched_updates_equal_the_closed_form_posterior() -> None:
    rng = np.random.default_rng(0)
    n_arms, dim, n = 4, 3, 200
    arms, x, r = rng.integers(0, n_arms, n), rng.standard_normal((n, dim)), rng.random(n)
    model = DisjointRidge(n_arms, dim, ridge=2.0)
    for part in np.array_split(np.arange(n), 7):
        model.update(arms[part], x[part], r[part])
    for a in range(n_arms):
        xa, ra = x[arms == a], r[arms == a]
        a_mat = 2.0 * np.eye(dim) + xa.T @ xa
        np.testing.assert_allclose(model.a[a], a_mat)
        np.testing.assert_allclose(model.theta[a], np.linalg.solve(a_mat, xa.T @ ra))
        np.testing.assert_allclose(model.a_inv[a], np.linalg.inv(a_mat))


def test_mean_and_variance_gather_each_pool_arm() -> None:
    rng = np.random.default_rng(1)
    model = DisjointRidge(3, 2)
    model.update(rng.integers(0, 3, 50), rng.standard_normal((50, 2)), rng.random(50))
    x, pool = rng.standard_normal((2, 2)), np.array([[2, 0], [1, 1]])
    for r in range(2):
        for j in range(2):
            a = pool[r, j]
            assert np.isclose(model.mean(x, pool)[r, j], model.theta[a] @ x[r])
            assert np.isclose(model.variance(x, pool)[r, j], x[r] @ model.a_inv[a] @ x[r])
