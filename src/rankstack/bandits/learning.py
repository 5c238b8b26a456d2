"""Shared pieces of the learning policies: the context they see, slates from sampled scores, and Monte-Carlo
per-slot propensities.

A learning policy follows the ``Policy`` protocol (pool ids [rounds, pool], ``scores`` unused, ``k``, ``rng``)
and also takes ``context=`` (:class:`BanditContext`) and has ``update(pool, slates, rewards, context)``.
Pool entries are arm ids (item ids); PAD = -1 is never chosen.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from rankstack.bandits.exploration import top_positions
from rankstack.bandits.policy import Slates, slates_from_positions


@dataclass(frozen=True)
class BanditContext:
    """What a contextual policy sees: per-round features ``rounds`` [rounds, d_x] and per-arm features
    ``arms`` [n_arms, d_y] (row = arm id)."""

    rounds: np.ndarray
    arms: np.ndarray


class LearningPolicy(Protocol):
    """A ``Policy`` that also learns from the rewards of the slates it chose."""

    def choose(self, pool: np.ndarray, scores: np.ndarray, k: int, rng: np.random.Generator, *,
               context: BanditContext | None = None) -> Slates:
        """Slates and per-slot propensities."""
        ...

    def update(self, pool: np.ndarray, slates: Slates, rewards: np.ndarray, context: BanditContext | None = None
               ) -> None:
        """Learn from ``rewards`` [rounds, k] (0/1 per shown slot; ignored on PAD)."""
        ...


def need_context(context: BanditContext | None, name: str) -> BanditContext:
    """``context`` or a clear error naming the policy."""
    if context is None:
        raise ValueError(f"{name} is contextual: pass context=BanditContext(rounds, arms)")
    return context


def shown(pool: np.ndarray, slates: Slates, rewards: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(round index, arm id, reward) of every shown (non-PAD) slot, flattened."""
    rows, slots = np.nonzero(slates.items >= 0)
    return rows, slates.items[rows, slots], np.asarray(rewards, dtype=np.float64)[rows, slots]


def masked(values: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """``values`` with -inf on PAD pool entries."""
    return np.where(pool >= 0, values, -np.inf)


def ranked_slates(pool: np.ndarray, sampled: np.ndarray, k: int) -> np.ndarray:
    """Pool positions of the top ``k`` sampled scores per round, best first (PAD never chosen)."""
    return top_positions(masked(sampled, pool), pool >= 0, k)


def mc_slot_propensity(positions: np.ndarray, draw: Callable[[], np.ndarray], pool: np.ndarray, k: int,
                       samples: int) -> np.ndarray:
    """Monte-Carlo per-slot propensity of the shown ``positions``: the share of ``samples`` fresh posterior
    draws (``draw()`` → sampled scores [rounds, pool]) whose top-k puts the same item at the same slot.

    NaN when ``samples`` is 0; PAD slots are NaN.
    """
    if samples <= 0:
        return np.full(positions.shape, np.nan)
    hits = np.zeros(positions.shape)
    for _ in range(samples):
        hits += ranked_slates(pool, draw(), k) == positions
    return np.where(positions >= 0, hits / samples, np.nan)


def mc_action_dist(draw: Callable[[], np.ndarray], pool: np.ndarray, k: int, samples: int) -> np.ndarray:
    """Monte-Carlo action_dist [rounds, pool, k] from ``samples`` posterior draws of the sampled scores."""
    n, m = pool.shape
    width = min(k, m)
    out = np.zeros((n, m, width))
    rows = np.arange(n)[:, None]
    slots = np.arange(width)[None, :]
    for _ in range(samples):
        top = ranked_slates(pool, draw(), k)
        ok = top >= 0
        np.add.at(out, (np.broadcast_to(rows, top.shape)[ok], top[ok], np.broadcast_to(slots, top.shape)[ok]), 1.0)
    return out / max(samples, 1)


def sampled_slates(pool: np.ndarray, draw: Callable[[], np.ndarray], k: int, samples: int) -> Slates:
    """Thompson slates: one posterior draw ranks each round's slate; propensities by ``samples`` more draws."""
    positions = ranked_slates(pool, draw(), k)
    return slates_from_positions(pool, positions, mc_slot_propensity(positions, draw, pool, k, samples))
