"""Logging policies that choose slates and report the exact propensity of every shown item.

A propensity is the marginal probability that the policy puts this item in this slot for this request,
π(item, position | request), as in the Open Bandit Dataset; for each slot it sums to 1 over the
eligible items (:meth:`LoggingPolicy.action_dist`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from rankstack.simulation.config import PolicyConfig
from rankstack.simulation.world import Marketplace, Requests


class LoggingPolicy(ABC):
    """Chooses ``k`` distinct eligible items per request and knows its own choice probabilities."""

    def __init__(self, k: int) -> None:
        self.k = k

    @abstractmethod
    def choose(
        self, req: Requests, eligible: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """(items [n, k], propensities [n, k]) for each request; ``eligible`` is a bool mask [n_items]."""

    @abstractmethod
    def action_dist(self, req: Requests, eligible: np.ndarray) -> np.ndarray:
        """π(item, position | request): float [n, n_items, k]; each [r, :, p] sums to 1."""


def _check_eligible(eligible: np.ndarray, k: int) -> np.ndarray:
    idx = np.flatnonzero(eligible)
    if len(idx) < k:
        raise ValueError(f"only {len(idx)} eligible items for slates of {k}")
    return idx


def uniform_slates(n: int, idx: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` slates of ``k`` distinct items drawn uniformly from ``idx`` in uniformly random order."""
    m = len(idx)
    if 4 * k > m:
        keys = rng.random((n, m))
        return idx[np.argsort(keys, axis=1)[:, :k]]
    picks = rng.integers(0, m, (n, k))
    while True:
        srt = np.sort(picks, axis=1)
        dup_rows = np.flatnonzero((srt[:, 1:] == srt[:, :-1]).any(axis=1))
        if len(dup_rows) == 0:
            return idx[picks]
        picks[dup_rows] = rng.integers(0, m, (len(dup_rows), k))


class UniformPolicy(LoggingPolicy):
    """Every eligible item equally likely in every slot: π = 1 / |eligible|."""

    def choose(
        self, req: Requests, eligible: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Uniform random slates."""
        idx = _check_eligible(eligible, self.k)
        items = uniform_slates(len(req), idx, self.k, rng)
        return items, np.full(items.shape, 1.0 / len(idx))

    def action_dist(self, req: Requests, eligible: np.ndarray) -> np.ndarray:
        """1/|eligible| on eligible items, 0 elsewhere, for every slot."""
        idx = _check_eligible(eligible, self.k)
        out = np.zeros((len(req), len(eligible), self.k))
        out[:, idx, :] = 1.0 / len(idx)
        return out


class ScoredPolicy(LoggingPolicy):
    """A policy driven by a per-request item score: the logging model's view of the world."""

    def __init__(self, k: int, world: Marketplace, config: PolicyConfig, rng: np.random.Generator) -> None:
        super().__init__(k)
        self.world = world
        self.config = config
        noise = config.score_noise
        self.user_latent_ = world.user_latent + noise * rng.standard_normal(world.user_latent.shape)
        self.item_latent_ = world.item_latent + noise * rng.standard_normal(world.item_latent.shape)
        self.item_bias_ = world.item_bias + noise * rng.standard_normal(world.n_items)

    def scores(self, req: Requests) -> np.ndarray:
        """Logging scores [n, n_items]: item bias (popularity) or a noisy attraction logit (affinity)."""
        if self.config.score == "popularity":
            return np.broadcast_to(self.item_bias_, (len(req), self.world.n_items)).copy()
        scale = self.world.config.affinity_scale / np.sqrt(self.world.config.latent_dim)
        return scale * (self.user_latent_[req.users] @ self.item_latent_.T) + self.item_bias_


class EpsilonGreedyPolicy(ScoredPolicy):
    """Top-k by score in score order; with probability ε a uniform slate instead.

    π(i, p) = (1 − ε)·1[i is the p-th best eligible item] + ε / |eligible|.
    """

    def _greedy(self, req: Requests, eligible: np.ndarray) -> np.ndarray:
        s = np.where(eligible, self.scores(req), -np.inf)
        top = np.argpartition(-s, self.k - 1, axis=1)[:, : self.k]
        order = np.argsort(-np.take_along_axis(s, top, axis=1), axis=1, kind="stable")
        return np.take_along_axis(top, order, axis=1)

    def choose(
        self, req: Requests, eligible: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Greedy slates, each replaced by a uniform one with probability ε."""
        idx = _check_eligible(eligible, self.k)
        eps = self.config.epsilon
        greedy = self._greedy(req, eligible)
        explore = rng.random(len(req)) < eps
        items = greedy.copy()
        items[explore] = uniform_slates(int(explore.sum()), idx, self.k, rng)
        prop = eps / len(idx) + (1.0 - eps) * (items == greedy)
        return items, prop

    def action_dist(self, req: Requests, eligible: np.ndarray) -> np.ndarray:
        """ε/|eligible| everywhere eligible plus 1 − ε on each slot's greedy item."""
        idx = _check_eligible(eligible, self.k)
        eps = self.config.epsilon
        out = np.zeros((len(req), len(eligible), self.k))
        out[:, idx, :] = eps / len(idx)
        greedy = self._greedy(req, eligible)
        rows = np.repeat(np.arange(len(req)), self.k)
        slots = np.tile(np.arange(self.k), len(req))
        out[rows, greedy.ravel(), slots] += 1.0 - eps
        return out


def capped_inclusion(weights: np.ndarray, k: int) -> np.ndarray:
    """Inclusion probabilities per row: π_i = min(1, s·w_i) with s chosen so that Σπ = k.

    With w sorted descending, the c largest are capped for the smallest c where (k − c)·w_(c) ≤ Σ_{j≥c} w_(j);
    then s = (k − c) / Σ_{j≥c} w_(j).
    """
    n, m = weights.shape
    part = np.partition(weights, m - k, axis=1)
    top = -np.sort(-part[:, m - k :], axis=1)
    rest = part[:, : m - k].sum(axis=1, keepdims=True)
    tail = rest + np.cumsum(top[:, ::-1], axis=1)[:, ::-1]  # Σ_{j≥c} w_(j), summed from the small end
    ok = (k - np.arange(k)) * top <= tail * (1 + 1e-12)
    c = np.argmax(ok, axis=1)
    scale = (k - c) / np.maximum(tail[np.arange(n), c], 1e-300)
    return np.minimum(weights * scale[:, None], 1.0)


class SoftmaxPolicy(ScoredPolicy):
    """K distinct items by systematic sampling with inclusion π_i ∝ exp(score_i / T) (capped at 1, Σπ = K),
    shuffled into random slots, so π(i, p) = π_i / K exactly.
    """

    def inclusion(self, req: Requests, eligible: np.ndarray) -> np.ndarray:
        """Inclusion probabilities [n, n_items] (0 for ineligible items)."""
        _check_eligible(eligible, self.k)
        s = np.where(eligible, self.scores(req) / self.config.temperature, -np.inf)
        w = np.exp(s - s.max(axis=1, keepdims=True))
        return capped_inclusion(w, self.k)

    def choose(
        self, req: Requests, eligible: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Systematic PPS sample per request (one uniform start, k unit-spaced points), then a random order."""
        pi = self.inclusion(req, eligible)
        n, m = pi.shape
        cum = np.cumsum(pi, axis=1)
        cum *= self.k / cum[:, -1:]
        offset = (self.k + 1) * np.arange(n)[:, None]
        points = rng.random((n, 1)) + np.arange(self.k)[None, :]
        flat = np.searchsorted((cum + offset).ravel(), (points + offset).ravel(), side="right")
        items = np.minimum(flat.reshape(n, self.k) - m * np.arange(n)[:, None], m - 1)
        order = np.argsort(rng.random((n, self.k)), axis=1)
        items = np.take_along_axis(items, order, axis=1)
        return items, np.take_along_axis(pi, items, axis=1) / self.k

    def action_dist(self, req: Requests, eligible: np.ndarray) -> np.ndarray:
        """π_i / K in every slot."""
        pi = self.inclusion(req, eligible) / self.k
        return np.repeat(pi[:, :, None], self.k, axis=2)


def build_policy(config: PolicyConfig, world: Marketplace, k: int, rng: np.random.Generator) -> LoggingPolicy:
    """The logging policy named by ``config.kind``."""
    if config.kind == "uniform":
        return UniformPolicy(k)
    if config.kind == "epsilon_greedy":
        return EpsilonGreedyPolicy(k, world, config, rng)
    return SoftmaxPolicy(k, world, config, rng)
