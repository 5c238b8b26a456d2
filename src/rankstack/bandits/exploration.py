"""Exploration policies behind the ``Policy`` protocol: greedy, uniform, ε-greedy and softmax (systematic PPS).

Every policy reports per-slot propensities, π(a, l | round) = action_dist[round, a, l] (see
:mod:`rankstack.bandits.policy`). Pools may hold PAD (-1) anywhere; PAD entries are never chosen, and a round
with fewer than ``k`` valid items gets a shorter slate (PAD after its end).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from rankstack.bandits.draws import Draws, RoundDraws
from rankstack.bandits.policy import Slates, check_pool, slates_from_positions, slot_propensity


def top_positions(scores: np.ndarray, valid: np.ndarray, k: int) -> np.ndarray:
    """Pool positions of the ``k`` best valid scores per row, best first, equal scores → lower position first.

    NaN counts as -inf; rows with fewer valid entries end in -1.
    """
    n, m = scores.shape
    k = min(k, m)
    s = np.where(valid & ~np.isnan(scores), scores, -np.inf)
    pos = np.arange(m)
    if k < m:
        kth = np.take_along_axis(s, np.argpartition(-s, k - 1, axis=1)[:, k - 1: k], axis=1)
        code = np.where(valid & (s > kth), pos, np.where(valid & (s == kth), m + pos, 2 * m + pos))
        top = np.argpartition(code, k - 1, axis=1)[:, :k]
    else:
        top = np.broadcast_to(pos, (n, m)).copy()
    top_valid = np.take_along_axis(valid, top, axis=1)
    order = np.lexsort((top, -np.take_along_axis(s, top, axis=1), ~top_valid), axis=1)
    top = np.take_along_axis(top, order, axis=1)
    return np.where(np.take_along_axis(valid, top, axis=1), top, -1)


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


def _valid(pool: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    valid = pool >= 0
    return valid, valid.sum(axis=1)


class Greedy:
    """The ``k`` best-scored pool items in score order (equal scores: earlier pool position first); π = 1."""

    def choose(self, pool: np.ndarray, scores: np.ndarray, k: int, rng: Draws) -> Slates:
        """The top ``k`` of every round; no draws."""
        pool, scores = check_pool(pool, scores, k)
        positions = top_positions(scores, pool >= 0, k)
        return slates_from_positions(pool, positions, np.ones(positions.shape))

    def action_dist(self, pool: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
        """One-hot: 1 on each slot's greedy item."""
        pool, scores = check_pool(pool, scores, k)
        return _one_hot(top_positions(scores, pool >= 0, k), pool.shape[1])


def _one_hot(positions: np.ndarray, m: int) -> np.ndarray:
    n, k = positions.shape
    out = np.zeros((n, m, k))
    rows, slots = np.nonzero(positions >= 0)
    out[rows, positions[rows, slots], slots] = 1.0
    return out


class Uniform:
    """``k`` distinct valid items uniformly at random in random order: π(a, l) = 1 / |valid|."""

    def choose(self, pool: np.ndarray, scores: np.ndarray, k: int, rng: Draws) -> Slates:
        """Uniform slates (one draw for the batch when every round has the same valid entries)."""
        pool, scores = check_pool(pool, scores, k)
        valid, n_valid = _valid(pool)
        positions = RoundDraws(rng, len(pool)).slates(np.arange(len(pool)), valid, min(k, pool.shape[1]))
        return slates_from_positions(pool, positions, np.ones(positions.shape) / n_valid[:, None])

    def action_dist(self, pool: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
        """1 / |valid| on every valid item for each filled slot."""
        pool, scores = check_pool(pool, scores, k)
        valid, n_valid = _valid(pool)
        k = min(k, pool.shape[1])
        filled = np.arange(k)[None, :] < n_valid[:, None]
        return valid[:, :, None] * filled[:, None, :] / np.maximum(n_valid, 1)[:, None, None]


class EpsilonGreedy:
    """The greedy slate; with probability ε a uniform one instead.

    π(a, l) = (1 − ε)·1[a is slot l's greedy item] + ε / |valid|.
    """

    def __init__(self, epsilon: float) -> None:
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
        self.epsilon = epsilon

    def choose(self, pool: np.ndarray, scores: np.ndarray, k: int, rng: Draws) -> Slates:
        """One coin per round, then uniform slates for the rounds that explore."""
        pool, scores = check_pool(pool, scores, k)
        valid, n_valid = _valid(pool)
        eps = self.epsilon
        greedy = top_positions(scores, valid, k)
        draws = RoundDraws(rng, len(pool))
        explore = draws.uniforms() < eps
        positions = greedy.copy()
        positions[explore] = draws.slates(np.flatnonzero(explore), valid, greedy.shape[1])
        prop = eps / n_valid[:, None] + (1.0 - eps) * (positions == greedy)
        return slates_from_positions(pool, positions, prop)

    def action_dist(self, pool: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
        """ε / |valid| on every valid item plus 1 − ε on each slot's greedy item."""
        pool, scores = check_pool(pool, scores, k)
        greedy = top_positions(scores, pool >= 0, k)
        out = Uniform().action_dist(pool, scores, k) * self.epsilon
        return out + (1.0 - self.epsilon) * _one_hot(greedy, pool.shape[1])


class Softmax:
    """``k`` distinct items by systematic sampling with inclusion π_a ∝ exp(score_a / T) (capped at 1, Σπ = k).

    Valid items with a non-finite score count as 50 nats below the lowest finite one (last, still possible).
    ``order="score"`` shows the sample in descending score order; ``order="random"`` shuffles it into random
    slots, so π(a, l) = π_a / k. Under ``"score"`` the per-slot probabilities are exact: a systematic sample is
    a step function of its one uniform start, with a step at each fractional part of the cumulative π.
    """

    def __init__(self, temperature: float, order: Literal["score", "random"] = "score") -> None:
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature
        self.order = order

    def inclusion(self, pool: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
        """Inclusion probabilities [rounds, pool size] (0 on PAD); each row sums to min(k, |valid|)."""
        pool, scores = check_pool(pool, scores, k)
        valid, n_valid = _valid(pool)
        z = scores / self.temperature
        finite = np.isfinite(z) & valid
        low = np.where(finite, z, np.inf).min(axis=1, keepdims=True)
        z = np.where(finite, z, np.where(np.isfinite(low), low - 50.0, 0.0))
        z = np.where(valid, z, -np.inf)
        top = np.where(n_valid > 0, z.max(axis=1, initial=-np.inf), 0.0)
        w = np.exp(z - top[:, None])
        widths = np.minimum(k, n_valid)
        pi = np.zeros_like(w)
        for width in np.unique(widths[widths > 0]):
            rows = widths == width
            pi[rows] = capped_inclusion(w[rows], int(width))
        return pi

    @staticmethod
    def _sample(pi: np.ndarray, widths: np.ndarray, starts: np.ndarray, valid: np.ndarray, k: int) -> np.ndarray:
        """Pool positions [len(starts), k] of the systematic samples at ``starts``, PAD past each width."""
        n, m = pi.shape
        cum = np.cumsum(pi, axis=1)
        cum *= widths[:, None] / np.where(cum[:, -1:] > 0, cum[:, -1:], 1.0)
        offset = (k + 1) * np.arange(n)[:, None]
        points = starts[:, None] + np.arange(k)[None, :]
        flat = np.searchsorted((cum + offset).ravel(), (points + offset).ravel(), side="right")
        last = m - 1 - np.argmax(valid[:, ::-1], axis=1)
        positions = np.minimum(flat.reshape(n, k) - m * np.arange(n)[:, None], last[:, None])
        positions = np.where(np.arange(k)[None, :] < widths[:, None], positions, -1)
        for row in _rows_with_repeats(positions):
            positions[row] = _fill_repeats(positions[row], pi[row], valid[row], int(widths[row]))
        return positions

    def choose(self, pool: np.ndarray, scores: np.ndarray, k: int, rng: Draws) -> Slates:
        """One uniform start per round; under ``"random"`` then k uniforms per round for the slot order."""
        pi = self.inclusion(pool, scores, k)
        pool, scores = check_pool(pool, scores, k)
        valid, n_valid = _valid(pool)
        widths = np.minimum(k, n_valid)
        draws = RoundDraws(rng, len(pool))
        positions = self._sample(pi, widths, draws.uniforms(), valid, min(k, pool.shape[1]))
        if self.order == "random":
            keys = draws.keys(positions.shape[1])
            keys = np.where(positions >= 0, keys, 2.0) if (positions < 0).any() else keys
            positions = np.take_along_axis(positions, np.argsort(keys, axis=1), axis=1)
            prop = np.take_along_axis(pi, np.maximum(positions, 0), axis=1) / np.maximum(widths, 1)[:, None]
            return slates_from_positions(pool, positions, prop)
        positions = _score_order(positions, scores)
        dist = self._score_dist(pi, scores, widths, valid, min(k, pool.shape[1]))
        return slates_from_positions(pool, positions, slot_propensity(dist, positions))

    def action_dist(self, pool: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
        """π_a / k in every filled slot under ``"random"``; the exact step-function sum under ``"score"``."""
        pi = self.inclusion(pool, scores, k)
        pool, scores = check_pool(pool, scores, k)
        valid, n_valid = _valid(pool)
        widths = np.minimum(k, n_valid)
        k = min(k, pool.shape[1])
        if self.order == "score":
            return self._score_dist(pi, scores, widths, valid, k)
        filled = np.arange(k)[None, :] < widths[:, None]
        return pi[:, :, None] / np.maximum(widths, 1)[:, None, None] * filled[:, None, :]

    def _score_dist(self, pi: np.ndarray, scores: np.ndarray, widths: np.ndarray, valid: np.ndarray,
                    k: int) -> np.ndarray:
        """P(a at slot l) when the sample is shown in score order: Σ over the start's steps of step length."""
        n, m = pi.shape
        out = np.zeros((n, m, k))
        for row in range(n):
            if widths[row] == 0:
                continue
            cum = np.cumsum(pi[row])
            cum *= widths[row] / cum[-1]
            steps = np.unique(np.concatenate([[0.0, 1.0], cum - np.floor(cum)]))
            steps = steps[(steps >= 0.0) & (steps <= 1.0)]
            length = np.diff(steps)
            keep = length > 0
            starts = (steps[:-1] + steps[1:])[keep] / 2
            rep = np.repeat(row, len(starts))
            positions = self._sample(pi[rep], widths[rep], starts, valid[rep], k)
            positions = _score_order(positions, scores[rep])
            slots = np.broadcast_to(np.arange(positions.shape[1]), positions.shape)
            shown = positions >= 0
            np.add.at(out[row], (positions[shown], slots[shown]),
                      np.broadcast_to(length[keep][:, None], positions.shape)[shown])
        return out


def _score_order(positions: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Each row's positions by descending score (stable), PAD last."""
    key = np.where(positions >= 0, -np.take_along_axis(scores, np.maximum(positions, 0), axis=1), np.inf)
    key = np.where(np.isnan(key), np.inf, key)
    return np.take_along_axis(positions, np.argsort(key, axis=1, kind="stable"), axis=1)


def _rows_with_repeats(positions: np.ndarray) -> np.ndarray:
    srt = np.sort(positions, axis=1)
    return np.flatnonzero(((srt[:, 1:] == srt[:, :-1]) & (srt[:, 1:] >= 0)).any(axis=1))


def _fill_repeats(row: np.ndarray, pi: np.ndarray, valid: np.ndarray, width: int) -> np.ndarray:
    """A sample with a floating-point repeat at a step boundary, completed by the most likely unpicked items."""
    picked = np.unique(row[row >= 0])
    rest = np.setdiff1d(np.argsort(-pi, kind="stable"), picked, assume_unique=True)
    rest = rest[valid[rest]]
    out = np.full(len(row), -1)
    filled = np.concatenate([picked, rest[: width - len(picked)]])
    out[: len(filled)] = filled
    return out
