"""Exact sufficient statistics of the online policy stage: integer sums that any number of workers reach bit for bit.

Features are fixed-point integers (``q = round(x · 2^8)``, |x| ≤ 1), so every statistic is a sum of integer
products held in int64: adding events in any order or in any batches gives the same bits, a checkpoint plus the
events after it equals folding everything again, and two workers that fold the same event log hold identical
state. The float model is derived from the sums (:func:`ridge_model`):

A = λI + Σ_impressions φφᵀ, b = Σ_events w(event) φ, θ̂ = A⁻¹b  (φ = q / 2^8; Li et al., WWW 2010),

and per item Beta(α₀ + wins, β₀ + max(pulls − wins, 0)) for the context-free policy (Chapelle & Li, NIPS 2011).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from safetensors.numpy import load as load_bytes
from safetensors.numpy import save as save_bytes

SCALE = 256  # features are multiples of 1 / SCALE
_FIELDS = ("gram", "reward", "pulls", "wins", "counters")


def quantize(x: np.ndarray) -> np.ndarray:
    """Fixed-point features: round(clip(x, -1, 1) · SCALE) as int64."""
    return np.rint(np.clip(np.asarray(x, np.float64), -1.0, 1.0) * SCALE).astype(np.int64)


@dataclass
class PoolStats:
    """Σ qqᵀ over impressions (``gram`` [D, D]), Σ w·q over rewarded events (``reward`` [D]), per-item impressions
    (``pulls``) and reward units (``wins``) [n_items]; ``cursor`` is the last folded log position."""

    gram: np.ndarray
    reward: np.ndarray
    pulls: np.ndarray
    wins: np.ndarray
    cursor: int = 0
    events: int = 0

    @classmethod
    def empty(cls, dim: int, n_items: int) -> PoolStats:
        """No events yet."""
        return cls(np.zeros((dim, dim), np.int64), np.zeros(dim, np.int64), np.zeros(n_items, np.int64),
                   np.zeros(n_items, np.int64))

    def fold(self, q: np.ndarray, items: np.ndarray, pulls: np.ndarray, rewards: np.ndarray) -> None:
        """Add events: fixed-point features ``q`` [n, D], item ids [n], pull flags (0/1) [n], reward units [n]."""
        q = np.asarray(q, np.int64)
        pulled = q[np.asarray(pulls) > 0]
        self.gram += pulled.T @ pulled  # integer matmul: exact, no BLAS rounding
        self.reward += (np.asarray(rewards, np.int64)[:, None] * q).sum(axis=0)
        np.add.at(self.pulls, items, np.asarray(pulls, np.int64))
        np.add.at(self.wins, items, np.asarray(rewards, np.int64))
        self.events += len(items)

    def copy(self) -> PoolStats:
        """An independent copy."""
        return PoolStats(self.gram.copy(), self.reward.copy(), self.pulls.copy(), self.wins.copy(), self.cursor,
                         self.events)

    def to_bytes(self) -> bytes:
        """The statistics as safetensors bytes (deterministic: equal state, equal bytes)."""
        return save_bytes({"gram": self.gram, "reward": self.reward, "pulls": self.pulls, "wins": self.wins,
                           "counters": np.array([self.cursor, self.events], np.int64)})

    @classmethod
    def from_bytes(cls, blob: bytes, dim: int, n_items: int) -> PoolStats:
        """Statistics written by :meth:`to_bytes`; a ``ValueError`` when they do not fit ``dim`` / ``n_items``."""
        arrays = load_bytes(blob)
        missing = [f for f in _FIELDS if f not in arrays]
        if missing:
            raise ValueError(f"policy state lacks {missing}")
        stats = cls(arrays["gram"].astype(np.int64), arrays["reward"].astype(np.int64),
                    arrays["pulls"].astype(np.int64), arrays["wins"].astype(np.int64),
                    int(arrays["counters"][0]), int(arrays["counters"][1]))
        if stats.gram.shape != (dim, dim) or stats.reward.shape != (dim,) or stats.pulls.shape != (n_items,) \
                or stats.wins.shape != (n_items,):
            raise ValueError(f"policy state has shapes {stats.gram.shape} / {stats.pulls.shape}, expected "
                             f"{(dim, dim)} / {(n_items,)}")
        return stats


@dataclass(frozen=True)
class RidgeModel:
    """The shared ridge model of one state: θ̂ [D], A⁻¹ [D, D] and a Cholesky factor of A⁻¹ (Thompson draws)."""

    theta: np.ndarray
    a_inv: np.ndarray
    a_inv_chol: np.ndarray


def ridge_model(stats: PoolStats, ridge: float) -> RidgeModel:
    """θ̂ = A⁻¹b with A = λI + gram / SCALE², b = reward / SCALE (exact conversions: the sums stay below 2^53)."""
    dim = len(stats.reward)
    a = ridge * np.eye(dim) + stats.gram.astype(np.float64) / SCALE**2
    a_inv = np.linalg.inv(a)
    a_inv = (a_inv + a_inv.T) / 2.0
    return RidgeModel(a_inv @ (stats.reward.astype(np.float64) / SCALE), a_inv, np.linalg.cholesky(a_inv))
