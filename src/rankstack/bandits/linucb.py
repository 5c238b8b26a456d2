"""Disjoint LinUCB (Li et al., WWW 2010): score_a = θ̂_aᵀx + α·√(xᵀA_a⁻¹x); the slate is the top-k scores.

Deterministic given its state, so the per-slot propensity is 1 for the shown item (0 elsewhere); equal
scores go to the earlier pool position.
"""

from __future__ import annotations

import numpy as np

from rankstack.bandits.disjoint_ridge import DisjointRidge
from rankstack.bandits.exploration import _one_hot
from rankstack.bandits.learning import BanditContext, masked, need_context, ranked_slates, shown
from rankstack.bandits.policy import Slates, check_pool, slates_from_positions


class LinUCB:
    """Disjoint LinUCB over per-round features ``context.rounds``, one ridge model per arm."""

    def __init__(self, n_arms: int, dim: int, alpha: float = 1.0, ridge: float = 1.0) -> None:
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        self.alpha = alpha
        self.model = DisjointRidge(n_arms, dim, ridge)

    def ucb(self, pool: np.ndarray, context: BanditContext) -> np.ndarray:
        """θ̂_aᵀx + α√(xᵀA_a⁻¹x) per pool entry (-inf on PAD)."""
        x = context.rounds
        return masked(self.model.mean(x, pool) + self.alpha * np.sqrt(self.model.variance(x, pool)), pool)

    def choose(self, pool: np.ndarray, scores: np.ndarray, k: int, rng: np.random.Generator, *,
               context: BanditContext | None = None) -> Slates:
        """The top-k UCB scores in order; propensity 1."""
        pool, scores = check_pool(pool, scores, k)
        positions = ranked_slates(pool, self.ucb(pool, need_context(context, "linucb")), k)
        return slates_from_positions(pool, positions, np.ones(positions.shape))

    def action_dist(self, pool: np.ndarray, scores: np.ndarray, k: int, *, context: BanditContext | None = None
                    ) -> np.ndarray:
        """One-hot on each slot's UCB-greedy item."""
        pool, scores = check_pool(pool, scores, k)
        return _one_hot(ranked_slates(pool, self.ucb(pool, need_context(context, "linucb")), k), pool.shape[1])

    def update(self, pool: np.ndarray, slates: Slates, rewards: np.ndarray, context: BanditContext | None = None
               ) -> None:
        """Ridge update of each shown arm with its round's features and reward."""
        rows, arms, r = shown(pool, slates, rewards)
        self.model.update(arms, need_context(context, "linucb").rounds[rows], r)
