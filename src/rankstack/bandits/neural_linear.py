"""NeuralLinear (Riquelme et al., ICLR 2018): Bayesian linear regression on a fixed representation, sampled
by Thompson sampling.

The representation is the bilinear feature map φ(r, a) = vec(x_r ⊗ y_a) of the round's features x_r and the
arm's features y_a (include a constant in both to keep the main effects), shared by all arms so an arm never
shown still gets a score from its features. Posterior: A = λI + Σ φφᵀ, b = Σ rφ, θ ~ N(A⁻¹b, v²A⁻¹); a round
draws θ̃_r = θ̂ + L z (L Lᵀ = v²A⁻¹, z ~ N(0, I)) and shows the top-k of θ̃_rᵀφ(r, a). Per-slot propensities
are a Monte-Carlo estimate over ``propensity_samples`` further draws.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rankstack.bandits.learning import BanditContext, mc_action_dist, need_context, sampled_slates, shown
from rankstack.bandits.policy import Slates, check_pool


class NeuralLinear:
    """Thompson sampling with a Bayesian last layer over φ = x ⊗ y (d_x · d_y weights)."""

    def __init__(self, dim_rounds: int, dim_arms: int, v: float = 0.5, ridge: float = 1.0,
                 propensity_samples: int = 100) -> None:
        if v <= 0 or ridge <= 0:
            raise ValueError(f"v and ridge must be > 0, got v={v}, ridge={ridge}")
        self.shape = (dim_rounds, dim_arms)
        size = dim_rounds * dim_arms
        self.v = v
        self.a = ridge * np.eye(size)
        self.b = np.zeros(size)
        self.propensity_samples = propensity_samples
        self._refresh()

    def _refresh(self) -> None:
        self.a_inv = np.linalg.inv(self.a)
        self.theta = self.a_inv @ self.b
        self.chol = np.linalg.cholesky(self.v**2 * (self.a_inv + self.a_inv.T) / 2)

    def features(self, context: BanditContext, rows: np.ndarray, arms: np.ndarray) -> np.ndarray:
        """φ = vec(x_row ⊗ y_arm) for paired ``rows`` and ``arms`` [n] → [n, d_x·d_y]."""
        x, y = context.rounds[rows], context.arms[arms]
        return (x[:, :, None] * y[:, None, :]).reshape(len(rows), -1)

    def _sampler(self, pool: np.ndarray, context: BanditContext, rng: np.random.Generator
                 ) -> Callable[[], np.ndarray]:
        x, y = context.rounds, context.arms
        idx = np.maximum(pool, 0)

        def draw() -> np.ndarray:
            theta = self.theta + rng.standard_normal((len(x), len(self.theta))) @ self.chol.T
            u = np.einsum("rd,rde->re", x, theta.reshape(len(x), *self.shape))
            return np.take_along_axis(u @ y.T, idx, axis=1)

        return draw

    def mean(self, pool: np.ndarray, context: BanditContext) -> np.ndarray:
        """Posterior-mean scores θ̂ᵀφ(r, a) [rounds, pool]."""
        u = context.rounds @ self.theta.reshape(self.shape)
        return np.take_along_axis(u @ context.arms.T, np.maximum(pool, 0), axis=1)

    def choose(self, pool: np.ndarray, scores: np.ndarray, k: int, rng: np.random.Generator, *,
               context: BanditContext | None = None) -> Slates:
        """Top-k of one posterior draw per round; Monte-Carlo per-slot propensities."""
        pool, scores = check_pool(pool, scores, k)
        return sampled_slates(pool, self._sampler(pool, need_context(context, "neural_linear"), rng), k,
                              self.propensity_samples)

    def action_dist(self, pool: np.ndarray, scores: np.ndarray, k: int, *, context: BanditContext | None = None,
                    rng: np.random.Generator | None = None) -> np.ndarray:
        """Monte-Carlo π(a, l) over ``propensity_samples`` draws."""
        pool, scores = check_pool(pool, scores, k)
        draw = self._sampler(pool, need_context(context, "neural_linear"), rng or np.random.default_rng(0))
        return mc_action_dist(draw, pool, k, self.propensity_samples)

    def update(self, pool: np.ndarray, slates: Slates, rewards: np.ndarray, context: BanditContext | None = None
               ) -> None:
        """A += ΦᵀΦ, b += Φᵀr over the shown slots, then the posterior is recomputed."""
        rows, arms, r = shown(pool, slates, rewards)
        phi = self.features(need_context(context, "neural_linear"), rows, arms)
        self.a += phi.T @ phi
        self.b += phi.T @ r
        self._refresh()
