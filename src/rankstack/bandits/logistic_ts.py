"""Logistic Thompson sampling with a diagonal Laplace posterior (Chapelle & Li, NIPS 2011, Algorithm 3).

A shared logistic model P(click) = σ(wᵀφ) on φ = vec(x ⊗ y) (as in NeuralLinear). The posterior is kept as
independent Gaussians N(m_i, q_i⁻¹). A batch of (φ_j, r_j) updates it: w = argmin ½Σ_i q_i(w_i − m_i)²
− Σ_j [r_j log σ(wᵀφ_j) + (1 − r_j) log(1 − σ(wᵀφ_j))] (L-BFGS), then m = w and
q_i += Σ_j φ_ji² p_j(1 − p_j), p_j = σ(wᵀφ_j). A round draws w̃ ~ N(m, diag(q)⁻¹) and shows the top-k of w̃ᵀφ;
per-slot propensities are a Monte-Carlo estimate over ``propensity_samples`` further draws.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, log_expit

from rankstack.bandits.learning import BanditContext, mc_action_dist, need_context, sampled_slates, shown
from rankstack.bandits.policy import Slates, check_pool


def laplace_update(m: np.ndarray, q: np.ndarray, phi: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The diagonal Laplace update of (m, q) with observations φ [n, d], r [n] ∈ {0, 1}."""

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        z = phi @ w
        value = 0.5 * float(q @ (w - m) ** 2) - float(r @ log_expit(z) + (1 - r) @ log_expit(-z))
        return value, q * (w - m) + phi.T @ (expit(z) - r)

    w = minimize(loss, m, jac=True, method="L-BFGS-B").x
    p = expit(phi @ w)
    return w, q + (phi**2).T @ (p * (1 - p))


class LogisticTS:
    """Thompson sampling on a Bayesian logistic regression over φ = x ⊗ y with a diagonal Laplace posterior."""

    def __init__(self, dim_rounds: int, dim_arms: int, prior_precision: float = 1.0,
                 propensity_samples: int = 100) -> None:
        if prior_precision <= 0:
            raise ValueError(f"prior_precision must be > 0, got {prior_precision}")
        self.shape = (dim_rounds, dim_arms)
        self.m = np.zeros(dim_rounds * dim_arms)
        self.q = np.full(dim_rounds * dim_arms, float(prior_precision))
        self.propensity_samples = propensity_samples

    def _sampler(self, pool: np.ndarray, context: BanditContext, rng: np.random.Generator
                 ) -> Callable[[], np.ndarray]:
        x, y = context.rounds, context.arms
        idx = np.maximum(pool, 0)

        def draw() -> np.ndarray:
            w = self.m + rng.standard_normal((len(x), len(self.m))) / np.sqrt(self.q)
            u = np.einsum("rd,rde->re", x, w.reshape(len(x), *self.shape))
            return np.take_along_axis(u @ y.T, idx, axis=1)

        return draw

    def choose(self, pool: np.ndarray, scores: np.ndarray, k: int, rng: np.random.Generator, *,
               context: BanditContext | None = None) -> Slates:
        """Top-k of one posterior draw per round; Monte-Carlo per-slot propensities."""
        pool, scores = check_pool(pool, scores, k)
        return sampled_slates(pool, self._sampler(pool, need_context(context, "logistic_ts"), rng), k,
                              self.propensity_samples)

    def action_dist(self, pool: np.ndarray, scores: np.ndarray, k: int, *, context: BanditContext | None = None,
                    rng: np.random.Generator | None = None) -> np.ndarray:
        """Monte-Carlo π(a, l) over ``propensity_samples`` draws."""
        pool, scores = check_pool(pool, scores, k)
        draw = self._sampler(pool, need_context(context, "logistic_ts"), rng or np.random.default_rng(0))
        return mc_action_dist(draw, pool, k, self.propensity_samples)

    def update(self, pool: np.ndarray, slates: Slates, rewards: np.ndarray, context: BanditContext | None = None
               ) -> None:
        """The diagonal Laplace update with the batch's shown slots."""
        rows, arms, r = shown(pool, slates, rewards)
        ctx = need_context(context, "logistic_ts")
        phi = (ctx.rounds[rows][:, :, None] * ctx.arms[arms][:, None, :]).reshape(len(rows), -1)
        self.m, self.q = laplace_update(self.m, self.q, phi, r)
