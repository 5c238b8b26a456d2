"""Per-arm (disjoint) Bayesian ridge regression, the shared core of LinUCB, linear TS and SquareCB.

For arm a with the rounds' features x and rewards r it was shown with:
A_a = λI + Σ x xᵀ, b_a = Σ r x, θ̂_a = A_a⁻¹ b_a; the posterior of θ_a under a N(0, v²/λ·I) prior and
N(0, v²) noise is N(θ̂_a, v² A_a⁻¹) (Li et al., WWW 2010; Agrawal & Goyal, ICML 2013).
"""

from __future__ import annotations

import numpy as np
from scipy import sparse


class DisjointRidge:
    """A_a, b_a for ``n_arms`` arms over ``dim`` features, updated in batches; ``theta`` and ``a_inv`` cached."""

    def __init__(self, n_arms: int, dim: int, ridge: float = 1.0) -> None:
        if ridge <= 0:
            raise ValueError(f"ridge must be > 0, got {ridge}")
        self.ridge = ridge
        self.a = np.broadcast_to(ridge * np.eye(dim), (n_arms, dim, dim)).copy()
        self.b = np.zeros((n_arms, dim))
        self.a_inv = np.linalg.inv(self.a)
        self.theta = np.zeros((n_arms, dim))

    def update(self, arms: np.ndarray, x: np.ndarray, rewards: np.ndarray) -> None:
        """Add the observations (arm [n], features [n, dim], reward [n]): A_a += Σ x xᵀ, b_a += Σ r x."""
        n_arms, dim = self.b.shape
        if len(arms) == 0:
            return
        onehot = sparse.csr_matrix((np.ones(len(arms)), (arms, np.arange(len(arms)))), shape=(n_arms, len(arms)))
        outer = (x[:, :, None] * x[:, None, :]).reshape(len(arms), dim * dim)
        self.a += np.asarray(onehot @ outer).reshape(n_arms, dim, dim)
        self.b += np.asarray(onehot @ (rewards[:, None] * x))
        touched = np.unique(arms)
        self.a_inv[touched] = np.linalg.inv(self.a[touched])
        self.theta[touched] = np.einsum("ade,ae->ad", self.a_inv[touched], self.b[touched])

    def mean(self, x: np.ndarray, arms: np.ndarray) -> np.ndarray:
        """θ̂_aᵀ x_r for every round r [rounds, dim] and pool arm arms[r, j] → [rounds, pool]."""
        return np.take_along_axis(x @ self.theta.T, np.maximum(arms, 0), axis=1)

    def variance(self, x: np.ndarray, arms: np.ndarray) -> np.ndarray:
        """xᵀ A_a⁻¹ x [rounds, pool]; computed for every arm at once, then gathered at ``arms``."""
        per_arm = np.einsum("rd,rad->ra", x, np.matmul(x[None], self.a_inv).transpose(1, 0, 2))
        return np.maximum(np.take_along_axis(per_arm, np.maximum(arms, 0), axis=1), 0.0)
