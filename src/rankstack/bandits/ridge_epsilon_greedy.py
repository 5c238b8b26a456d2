"""ε-greedy over a learned regressor: the disjoint ridge's θ̂_aᵀx scores the pool and ``EpsilonGreedy`` picks
the slate, π(a, l) = (1 − ε)·1[a is slot l's greedy item] + ε / |valid| (exact)."""

from __future__ import annotations

import numpy as np

from rankstack.bandits.disjoint_ridge import DisjointRidge
from rankstack.bandits.exploration import EpsilonGreedy
from rankstack.bandits.learning import BanditContext, masked, need_context, shown
from rankstack.bandits.policy import Slates, check_pool


class RidgeEpsilonGreedy:
    """The greedy slate by per-arm ridge predictions; with probability ε a uniform one."""

    def __init__(self, n_arms: int, dim: int, epsilon: float = 0.1, ridge: float = 1.0) -> None:
        self.explore = EpsilonGreedy(epsilon)
        self.model = DisjointRidge(n_arms, dim, ridge)

    def predict(self, pool: np.ndarray, context: BanditContext) -> np.ndarray:
        """θ̂_aᵀx per pool entry (-inf on PAD)."""
        return masked(self.model.mean(context.rounds, pool), pool)

    def choose(self, pool: np.ndarray, scores: np.ndarray, k: int, rng: np.random.Generator, *,
               context: BanditContext | None = None) -> Slates:
        """``EpsilonGreedy`` over the predictions; exact per-slot propensities."""
        pool, scores = check_pool(pool, scores, k)
        return self.explore.choose(pool, self.predict(pool, need_context(context, "epsilon_greedy")), k, rng)

    def action_dist(self, pool: np.ndarray, scores: np.ndarray, k: int, *, context: BanditContext | None = None
                    ) -> np.ndarray:
        """``EpsilonGreedy.action_dist`` over the predictions."""
        pool, scores = check_pool(pool, scores, k)
        return self.explore.action_dist(pool, self.predict(pool, need_context(context, "epsilon_greedy")), k)

    def update(self, pool: np.ndarray, slates: Slates, rewards: np.ndarray, context: BanditContext | None = None
               ) -> None:
        """Ridge update of each shown arm."""
        rows, arms, r = shown(pool, slates, rewards)
        self.model.update(arms, need_context(context, "epsilon_greedy").rounds[rows], r)
