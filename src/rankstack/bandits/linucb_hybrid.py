"""Hybrid LinUCB (Li et al., WWW 2010, Algorithm 2): a shared linear part z·β plus a per-arm part x·θ_a.

Here x = the round's features x_r (d), and the shared features are z = vec(x_r ⊗ y_a) (k = d·d_y) of the
round's and the arm's features, as the paper's user ⊗ article features. With A₀ = I_k + Σ zzᵀ − Σ_a B_aᵀA_a⁻¹B_a,
b₀ = Σ rz − Σ_a B_aᵀA_a⁻¹b_a, A_a = λI_d + Σ xxᵀ, B_a = Σ xzᵀ, b_a = Σ rx (sums over arm a's observations):

    β̂ = A₀⁻¹b₀,  θ̂_a = A_a⁻¹(b_a − B_aβ̂),
    s = zᵀA₀⁻¹z − 2zᵀA₀⁻¹B_aᵀA_a⁻¹x + xᵀA_a⁻¹x + xᵀA_a⁻¹B_aA₀⁻¹B_aᵀA_a⁻¹x,
    p = zᵀβ̂ + xᵀθ̂_a + α√s,

and the slate is the top-k of p. Algorithm 2's update subtracts arm a's B_aᵀA_a⁻¹B_a from A₀ before adding an
observation and adds it back after; keeping the raw sums and recomputing A₀ from them is the same matrix, so a
batch of observations gives exactly the state of adding them one by one (tested). With no arm features
(d_y = 0) it is disjoint LinUCB. Deterministic given its state: propensity 1 on the shown slate.

Cost: the structure z = x ⊗ y keeps every term a matrix product over (x ⊗ x) and (y ⊗ y), never a per-pair k-vector.
"""

from __future__ import annotations

import numpy as np

from rankstack.bandits.exploration import _one_hot
from rankstack.bandits.learning import BanditContext, masked, need_context, ranked_slates, shown
from rankstack.bandits.policy import Slates, check_pool, slates_from_positions


def _outer_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise vec(a_i ⊗ b_i): [n, p], [n, q] → [n, p·q]."""
    return (a[:, :, None] * b[:, None, :]).reshape(len(a), -1)


class HybridLinUCB:
    """Hybrid LinUCB over round features x (per arm) and z = x ⊗ y (shared by all arms)."""

    def __init__(self, n_arms: int, dim_rounds: int, dim_arms: int, alpha: float = 1.0, ridge: float = 1.0,
                 shared_ridge: float = 1.0) -> None:
        if alpha < 0 or ridge <= 0 or shared_ridge <= 0:
            raise ValueError(f"alpha must be >= 0 and ridges > 0, got alpha={alpha}, ridge={ridge}, "
                             f"shared_ridge={shared_ridge}")
        d, k = dim_rounds, dim_rounds * dim_arms
        self.alpha, self.d, self.dy = alpha, d, dim_arms
        self.a = np.broadcast_to(ridge * np.eye(d), (n_arms, d, d)).copy()
        self.bmat = np.zeros((n_arms, d, k))
        self.b = np.zeros((n_arms, d))
        self.a0_raw = shared_ridge * np.eye(k)
        self.b0_raw = np.zeros(k)
        self._refresh(np.arange(n_arms))

    def _refresh(self, touched: np.ndarray) -> None:
        """Recompute A_a⁻¹ and G_a = B_aᵀA_a⁻¹ for ``touched`` arms, then A₀, β̂, θ̂ and the score terms."""
        if not hasattr(self, "a_inv"):
            self.a_inv = np.empty_like(self.a)
            self.g = np.zeros((len(self.a), self.bmat.shape[2], self.d))
        self.a_inv[touched] = np.linalg.inv(self.a[touched])
        self.g[touched] = np.matmul(self.bmat[touched].transpose(0, 2, 1), self.a_inv[touched])
        n, d, k = self.bmat.shape
        g_flat = self.g.transpose(1, 0, 2).reshape(k, n * d)  # [k, (a, d)]
        a0 = self.a0_raw - g_flat @ self.bmat.reshape(n * d, k)
        b0 = self.b0_raw - g_flat @ self.b.reshape(n * d)
        self.a0_inv = np.linalg.inv((a0 + a0.T) / 2)
        self.beta = self.a0_inv @ b0
        self.theta = np.matmul(self.a_inv, (self.b - self.bmat @ self.beta)[:, :, None])[:, :, 0]
        self.h = (self.a0_inv @ g_flat).reshape(k, n, d).transpose(1, 0, 2)  # A₀⁻¹G_a [a, k, d]
        self.s = np.matmul(self.g.transpose(0, 2, 1), self.h)  # G_aᵀA₀⁻¹G_a [a, d, d]

    def ucb(self, pool: np.ndarray, context: BanditContext) -> np.ndarray:
        """zᵀβ̂ + xᵀθ̂_a + α√s per pool entry (-inf on PAD)."""
        x, y = context.rounds, context.arms
        n, d, dy = len(self.a), self.d, self.dy
        xx = _outer_rows(x, x)  # [R, d·d]
        yy = _outer_rows(y, y)  # [A, dy·dy]
        mean = (x @ self.beta.reshape(d, dy)) @ y.T + x @ self.theta.T
        # zᵀA₀⁻¹z with z = x ⊗ y: A₀⁻¹ as [i, j, i', j'] → [(i, i'), (j, j')]
        m = self.a0_inv.reshape(d, dy, d, dy).transpose(0, 2, 1, 3).reshape(d * d, dy * dy)
        zz = xx @ m @ yy.T
        # zᵀA₀⁻¹B_aᵀA_a⁻¹x = Σ x_i y_j H_a[(i, j), l] x_l
        hq = self.h.reshape(n, d, dy, d).transpose(1, 3, 0, 2).reshape(d * d, n * dy)
        cross = np.einsum("raj,aj->ra", (xx @ hq).reshape(len(x), n, dy), y)
        own = np.einsum("rd,rad->ra", x, np.matmul(x[None], self.a_inv).transpose(1, 0, 2))
        extra = xx @ self.s.reshape(n, d * d).T
        var = np.maximum(zz - 2 * cross + own + extra, 0.0)
        full = mean + self.alpha * np.sqrt(var)
        return masked(np.take_along_axis(full, np.maximum(pool, 0), axis=1), pool)

    def choose(self, pool: np.ndarray, scores: np.ndarray, k: int, rng: np.random.Generator, *,
               context: BanditContext | None = None) -> Slates:
        """The top-k hybrid UCB scores in order; propensity 1."""
        pool, scores = check_pool(pool, scores, k)
        positions = ranked_slates(pool, self.ucb(pool, need_context(context, "linucb_hybrid")), k)
        return slates_from_positions(pool, positions, np.ones(positions.shape))

    def action_dist(self, pool: np.ndarray, scores: np.ndarray, k: int, *, context: BanditContext | None = None
                    ) -> np.ndarray:
        """One-hot on each slot's UCB-greedy item."""
        pool, scores = check_pool(pool, scores, k)
        return _one_hot(ranked_slates(pool, self.ucb(pool, need_context(context, "linucb_hybrid")), k),
                        pool.shape[1])

    def observe(self, arms: np.ndarray, x: np.ndarray, y: np.ndarray, rewards: np.ndarray) -> None:
        """Add observations (arm [n], round features [n, d], arm features [n, d_y], reward [n])."""
        if len(arms) == 0:
            return
        z = _outer_rows(x, y)
        self.a0_raw += z.T @ z
        self.b0_raw += z.T @ rewards
        order = np.argsort(arms, kind="stable")
        touched, starts = np.unique(arms[order], return_index=True)
        for arm, part in zip(touched, np.split(order, starts[1:]), strict=True):
            xa = x[part]
            self.a[arm] += xa.T @ xa
            self.bmat[arm] += xa.T @ z[part]
            self.b[arm] += xa.T @ rewards[part]
        self._refresh(touched)

    def update(self, pool: np.ndarray, slates: Slates, rewards: np.ndarray, context: BanditContext | None = None
               ) -> None:
        """Add every shown slot as an observation of its arm with its round's features."""
        ctx = need_context(context, "linucb_hybrid")
        rows, arms, r = shown(pool, slates, rewards)
        self.observe(arms, ctx.rounds[rows], ctx.arms[arms], r)
