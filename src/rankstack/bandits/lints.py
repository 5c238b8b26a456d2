"""Linear Thompson sampling, disjoint arms (Agrawal & Goyal, ICML 2013).

θ̃_a ~ N(θ̂_a, v²A_a⁻¹) independently per arm, so for a round with features x the sampled score
θ̃_aᵀx ~ N(θ̂_aᵀx, v²·xᵀA_a⁻¹x) independently per arm: the policy draws the scores directly. The slate is the
top-k draws; per-slot propensities are a Monte-Carlo estimate over ``propensity_samples`` further draws.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rankstack.bandits.disjoint_ridge import DisjointRidge
from rankstack.bandits.learning import BanditContext, mc_action_dist, need_context, sampled_slates, shown
from rankstack.bandits.policy import Slates, check_pool


class LinTS:
    """Disjoint linear Thompson sampling over ``context.rounds``."""

    def __init__(self, n_arms: int, dim: int, v: float = 0.5, ridge: float = 1.0,
                 propensity_samples: int = 100) -> None:
        if v <= 0:
            raise ValueError(f"v must be > 0, got {v}")
        self.v = v
        self.model = DisjointRidge(n_arms, dim, ridge)
        self.propensity_samples = propensity_samples

    def _sampler(self, pool: np.ndarray, context: BanditContext, rng: np.random.Generator
                 ) -> Callable[[], np.ndarray]:
        x = context.rounds
        mean = self.model.mean(x, pool)
        std = self.v * np.sqrt(self.model.variance(x, pool))
        return lambda: mean + std * rng.standard_normal(mean.shape)

    def choose(self, pool: np.ndarray, scores: np.ndarray, k: int, rng: np.random.Generator, *,
               context: BanditContext | None = None) -> Slates:
        """Top-k of one posterior draw; Monte-Carlo per-slot propensities."""
        pool, scores = check_pool(pool, scores, k)
        return sampled_slates(pool, self._sampler(pool, need_context(context, "lints"), rng), k,
                              self.propensity_samples)

    def action_dist(self, pool: np.ndarray, scores: np.ndarray, k: int, *, context: BanditContext | None = None,
                    rng: np.random.Generator | None = None) -> np.ndarray:
        """Monte-Carlo π(a, l) over ``propensity_samples`` draws."""
        pool, scores = check_pool(pool, scores, k)
        draw = self._sampler(pool, need_context(context, "lints"), rng or np.random.default_rng(0))
        return mc_action_dist(draw, pool, k, self.propensity_samples)

    def update(self, pool: np.ndarray, slates: Slates, rewards: np.ndarray, context: BanditContext | None = None
               ) -> None:
        """Ridge update of each shown arm (the closed-form posterior)."""
        rows, arms, r = shown(pool, slates, rewards)
        self.model.update(arms, need_context(context, "lints").rounds[rows], r)
