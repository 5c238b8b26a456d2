"""The ``Policy`` protocol and the one propensity convention of rankstack.

A policy gets, per round (a request), a pool of candidate item ids [rounds, pool size] with PAD = -1 and
their scores of the same shape, and picks a slate of ``k`` distinct pool items per round.

Propensity convention (the Open Bandit Dataset's and obp's):

- ``action_dist(pool, scores, k)[r, a, l]`` = P(pool item ``a`` is shown at slot ``l`` | round ``r``), an
  array [rounds, pool size, k]; every slot's column sums to 1 over the pool (PAD entries get 0).
- The logged ``propensity`` of a shown item is its **per-slot** probability, ``action_dist[r, a, l]`` for the
  item ``a`` it shows at slot ``l``: what :meth:`Policy.choose` returns, what the simulator writes in
  ``events.parquet`` and what the pipeline serves.
- The **inclusion** probability π_a = Σ_l action_dist[r, a, l] (the chance that ``a`` is on the slate at
  all) sums to k over the pool; :func:`inclusion` derives it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from rankstack.bandits.draws import Draws

PAD = -1


@dataclass(frozen=True)
class Slates:
    """Chosen slates: item ids and pool positions [rounds, k] (PAD = -1 past a short pool's end) and the
    per-slot propensity of each shown item (NaN on PAD slots)."""

    items: np.ndarray
    positions: np.ndarray
    propensity: np.ndarray


@runtime_checkable
class Policy(Protocol):
    """Chooses slates from scored pools and knows the exact probability of every choice it can make."""

    def choose(self, pool: np.ndarray, scores: np.ndarray, k: int, rng: Draws) -> Slates:
        """``k`` distinct valid pool items per round (fewer when the pool is shorter) with per-slot propensities."""
        ...

    def action_dist(self, pool: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
        """P(pool item a at slot l | round r): float [rounds, pool size, k]; each slot sums to 1 over the pool."""
        ...


def check_pool(pool: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The pool and scores as 2-D arrays of one shape, or a ValueError that says which argument is wrong."""
    pool, scores = np.asarray(pool), np.asarray(scores, dtype=np.float64)
    if pool.ndim != 2:
        raise ValueError(f"pool must be [rounds, pool size] item ids, got shape {pool.shape}")
    if scores.shape != pool.shape:
        raise ValueError(f"scores must have the pool's shape {pool.shape}, got {scores.shape}")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    return pool, scores


def slates_from_positions(pool: np.ndarray, positions: np.ndarray, propensity: np.ndarray) -> Slates:
    """Slates whose items are ``pool`` gathered at ``positions`` (PAD where the position is -1)."""
    rows = np.arange(len(pool))[:, None]
    shown = positions >= 0
    if shown.all():
        return Slates(pool[rows, positions], positions, propensity)
    items = np.where(shown, pool[rows, np.maximum(positions, 0)], PAD)
    return Slates(items, positions, np.where(shown, propensity, np.nan))


def slot_propensity(action_dist: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """The per-slot propensity of each shown item [rounds, k]: action_dist[r, positions[r, l], l] (NaN on PAD)."""
    rounds, k = positions.shape
    got = action_dist[np.arange(rounds)[:, None], np.maximum(positions, 0), np.arange(k)[None, :]]
    return np.where(positions >= 0, got, np.nan)


def inclusion(action_dist: np.ndarray, positions: np.ndarray | None = None) -> np.ndarray:
    """Inclusion probabilities π = Σ_l action_dist[..., l]: [rounds, pool size], or gathered at ``positions``."""
    pi = action_dist.sum(axis=2)
    if positions is None:
        return pi
    got = np.take_along_axis(pi, np.maximum(positions, 0), axis=1)
    return np.where(positions >= 0, got, np.nan)
