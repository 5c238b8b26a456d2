"""SquareCB (Foster & Rakhlin, ICML 2020): inverse-gap weighting over a regressor's predicted rewards.

For K candidate arms with predictions ŷ and best b = argmax ŷ:
p(a) = 1 / (K + γ(ŷ_b − ŷ_a)) for a ≠ b, and p(b) = 1 − Σ_{a≠b} p(a).

Slates, position-aware (stratified IGW): rank the pool by ŷ; slot l's candidates are the items whose rank
≡ l (mod k), so its best candidate is the greedy slate's l-th item and the slots' candidate sets are disjoint
(items are distinct without rejection and every per-slot propensity is exact). Slot l draws by IGW with
γ_l = γ / (1 + l): lower slots are examined less, so exploring there costs less. The regressor here is the
disjoint ridge (θ̂_aᵀx per arm).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from rankstack.bandits.disjoint_ridge import DisjointRidge
from rankstack.bandits.learning import BanditContext, masked, need_context, shown
from rankstack.bandits.policy import Slates, check_pool, slates_from_positions


def igw(pred: np.ndarray, valid: np.ndarray, gamma: float) -> np.ndarray:
    """IGW probabilities per row of ``pred`` [rows, K] whose column 0 is the row's best valid arm."""
    n_valid = valid.sum(axis=1, keepdims=True)
    gap = np.where(valid, pred[:, :1] - pred, 0.0)
    p = np.where(valid, 1.0 / (np.maximum(n_valid, 1) + gamma * np.maximum(gap, 0.0)), 0.0)
    p[:, 0] = np.where(valid[:, 0], 0.0, p[:, 0])
    p[:, 0] = np.where(valid[:, 0], 1.0 - p.sum(axis=1), 0.0)
    return p


class SquareCB:
    """Stratified inverse-gap weighting over the disjoint ridge regressor's predictions."""

    def __init__(self, n_arms: int, dim: int, gamma: float = 10_000.0, ridge: float = 1.0) -> None:
        if gamma < 0:
            raise ValueError(f"gamma must be >= 0, got {gamma}")
        self.gamma = gamma
        self.model = DisjointRidge(n_arms, dim, ridge)

    def _groups(self, pool: np.ndarray, pred: np.ndarray, k: int
                ) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
        """Per slot: candidate pool positions [rounds, K_l], their validity and IGW probabilities."""
        s = masked(np.nan_to_num(pred, nan=-np.inf), pool)
        order = np.lexsort((np.broadcast_to(np.arange(pool.shape[1]), pool.shape), -s), axis=1)
        valid = np.take_along_axis(pool >= 0, order, axis=1)
        for slot in range(min(k, pool.shape[1])):
            cand, ok = order[:, slot::k], valid[:, slot::k]
            values = np.where(ok, np.take_along_axis(s, cand, axis=1), 0.0)
            yield slot, cand, ok, igw(values, ok, self.gamma / (1 + slot))

    def predict(self, pool: np.ndarray, context: BanditContext) -> np.ndarray:
        """The regressor's ŷ per pool entry."""
        return self.model.mean(context.rounds, pool)

    def choose(self, pool: np.ndarray, scores: np.ndarray, k: int, rng: np.random.Generator, *,
               context: BanditContext | None = None) -> Slates:
        """One IGW draw per slot from its own stratum; exact per-slot propensities."""
        pool, scores = check_pool(pool, scores, k)
        pred = self.predict(pool, need_context(context, "squarecb"))
        width = min(k, pool.shape[1])
        positions = np.full((len(pool), width), -1)
        prop = np.full((len(pool), width), np.nan)
        u = rng.random((len(pool), width))
        for slot, cand, ok, p in self._groups(pool, pred, k):
            cum = np.cumsum(p, axis=1)
            pick = np.minimum((cum <= u[:, slot : slot + 1] * cum[:, -1:]).sum(axis=1), p.shape[1] - 1)
            rows = np.arange(len(pool))
            has = ok[:, 0]
            positions[:, slot] = np.where(has, cand[rows, pick], -1)
            prop[:, slot] = np.where(has, p[rows, pick], np.nan)
        return slates_from_positions(pool, positions, prop)

    def action_dist(self, pool: np.ndarray, scores: np.ndarray, k: int, *, context: BanditContext | None = None
                    ) -> np.ndarray:
        """π(a, l) = the slot's IGW probability on its stratum, 0 elsewhere."""
        pool, scores = check_pool(pool, scores, k)
        pred = self.predict(pool, need_context(context, "squarecb"))
        out = np.zeros((len(pool), pool.shape[1], min(k, pool.shape[1])))
        for slot, cand, ok, p in self._groups(pool, pred, k):
            np.put_along_axis(out[:, :, slot], cand, np.where(ok, p, 0.0), axis=1)
        return out

    def update(self, pool: np.ndarray, slates: Slates, rewards: np.ndarray, context: BanditContext | None = None
               ) -> None:
        """Ridge update of each shown arm (the regression oracle)."""
        rows, arms, r = shown(pool, slates, rewards)
        self.model.update(arms, need_context(context, "squarecb").rounds[rows], r)
