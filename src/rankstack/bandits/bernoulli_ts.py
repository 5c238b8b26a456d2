"""Context-free Bernoulli Thompson sampling with Beta posteriors (Chapelle & Li, NIPS 2011).

Each arm a has Beta(α₀ + clicks_a, β₀ + impressions_a − clicks_a); a round draws θ̃_a from every arm's posterior
and shows the top-k θ̃ in order (slot 0 = largest draw). Per-slot propensities have no closed form: a
Monte-Carlo estimate over ``propensity_samples`` further draws (recorded on the policy).
"""

from __future__ import annotations

import numpy as np

from rankstack.bandits.learning import BanditContext, mc_action_dist, sampled_slates, shown
from rankstack.bandits.policy import Slates, check_pool


class BernoulliTS:
    """Beta-Bernoulli Thompson sampling over arm ids; every shown slot counts as one Bernoulli trial."""

    def __init__(self, n_arms: int, prior: tuple[float, float] = (1.0, 1.0), propensity_samples: int = 100) -> None:
        if min(prior) <= 0:
            raise ValueError(f"Beta prior parameters must be > 0, got {prior}")
        self.alpha = np.full(n_arms, float(prior[0]))
        self.beta = np.full(n_arms, float(prior[1]))
        self.propensity_samples = propensity_samples

    def _draw(self, pool: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        arms = np.maximum(pool, 0)
        return rng.beta(self.alpha[arms], self.beta[arms])

    def choose(self, pool: np.ndarray, scores: np.ndarray, k: int, rng: np.random.Generator, *,
               context: BanditContext | None = None) -> Slates:
        """Top-k of one Beta draw per arm; Monte-Carlo per-slot propensities."""
        pool, scores = check_pool(pool, scores, k)
        return sampled_slates(pool, lambda: self._draw(pool, rng), k, self.propensity_samples)

    def action_dist(self, pool: np.ndarray, scores: np.ndarray, k: int, rng: np.random.Generator | None = None
                    ) -> np.ndarray:
        """Monte-Carlo π(a, l) over ``propensity_samples`` draws."""
        pool, scores = check_pool(pool, scores, k)
        gen = rng or np.random.default_rng(0)
        return mc_action_dist(lambda: self._draw(pool, gen), pool, k, self.propensity_samples)

    def update(self, pool: np.ndarray, slates: Slates, rewards: np.ndarray, context: BanditContext | None = None
               ) -> None:
        """α_a += clicks, β_a += non-clicks of every shown slot."""
        _, arms, r = shown(pool, slates, rewards)
        np.add.at(self.alpha, arms, r)
        np.add.at(self.beta, arms, 1.0 - r)
