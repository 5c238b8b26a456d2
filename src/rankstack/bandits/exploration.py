"""Exploration policies behind the ``Policy`` protocol: greedy, uniform, ε-greedy and softmax (systematic PPS).

Every policy reports per-slot propensities, π(a, l | round) = action_dist[round, a, l] (see
:mod:`rankstack.bandits.policy`). Pools may hold PAD (-1) anywhere; PAD entries are never chosen, and a round
with fewer than ``k`` valid items gets a shorter slate (PAD after its end).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from rankstack.bandits.draws import Draws, RequestDraws, RoundDraws, uniform_slates
from rankstack.bandits.policy import Slates, check_pool, slates_from_positions


def top_positions(scores: np.ndarray, valid: np.ndarray, k: int) -> np.ndarray:
    """Pool positions of the ``k`` best valid scores per row, best first, equal scores → lower position first.

    NaN counts as -inf; rows with fewer valid entries end in -1.
    """
    n, m = scores.shape
    k = min(k, m)
    if valid.all() and (scores[:, :-1] >= scores[:, 1:]).all():  # already in order (NaN fails the test)
        return np.arange(k)[None, :].repeat(n, axis=0)
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
        return slates_from_positions(pool, positions, np.ones(positions.shape) / np.maximum(n_valid, 1)[:, None])

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
        if explore.any():
            positions[explore] = draws.slates(np.flatnonzero(explore), valid, greedy.shape[1])
        prop = eps / np.maximum(n_valid, 1)[:, None] + (1.0 - eps) * (positions == greedy)
        return slates_from_positions(pool, positions, prop)

    def choose_ordered(self, pool: np.ndarray, k: int, draws: RequestDraws) -> tuple[np.ndarray, np.ndarray]:
        """``choose`` for one request whose pool [n] has no PAD and is already in preference order: the same
        draws, slate and per-slot propensities, without the batch bookkeeping (the serving path, ~4 µs)."""
        n = len(pool)
        width = min(k, n)
        greedy = np.arange(width)
        positions = greedy
        if draws.random() < self.epsilon:
            positions = uniform_slates(1, np.arange(n), width, draws.generator())[0]
        prop = self.epsilon / max(n, 1) + (1.0 - self.epsilon) * (positions == greedy)
        return pool[positions], prop

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
        return self._inclusion(scores, valid, np.minimum(k, n_valid))

    def _inclusion(self, scores: np.ndarray, valid: np.ndarray, widths: np.ndarray) -> np.ndarray:
        z = scores / self.temperature
        finite = np.isfinite(z) & valid
        if not finite.all():
            low = np.where(finite, z, np.inf).min(axis=1, keepdims=True)
            z = np.where(finite, z, np.where(np.isfinite(low), low - 50.0, 0.0))
            z = np.where(valid, z, -np.inf)
        top = z.max(axis=1, initial=-np.inf)
        w = np.exp(z - np.where(np.isfinite(top), top, 0.0)[:, None])
        if (widths == widths[0]).all() and widths[0] > 0:
            return capped_inclusion(w, int(widths[0]))
        pi = np.zeros_like(w)
        for width in np.unique(widths[widths > 0]):
            rows = widths == width
            pi[rows] = capped_inclusion(w[rows], int(width))
        return pi

    def choose(self, pool: np.ndarray, scores: np.ndarray, k: int, rng: Draws) -> Slates:
        """One uniform start per round; under ``"random"`` then k uniforms per round for the slot order."""
        pool, scores = check_pool(pool, scores, k)
        valid, n_valid = _valid(pool)
        widths = np.minimum(k, n_valid)
        pi = self._inclusion(scores, valid, widths)
        draws = RoundDraws(rng, len(pool))
        positions = _systematic(pi, widths, draws.uniforms(), valid, min(k, pool.shape[1]))
        if self.order == "random":
            keys = draws.keys(positions.shape[1])
            keys = np.where(positions >= 0, keys, 2.0) if (positions < 0).any() else keys
            positions = np.take_along_axis(positions, np.argsort(keys, axis=1), axis=1)
            prop = np.take_along_axis(pi, np.maximum(positions, 0), axis=1) / np.maximum(widths, 1)[:, None]
            return slates_from_positions(pool, positions, prop)
        ranks = _score_ranks(scores, valid)
        positions = np.take_along_axis(positions, np.argsort(_gather(ranks, positions, pool.shape[1]), axis=1), axis=1)
        prop = np.full(positions.shape, np.nan)
        for row in np.flatnonzero(widths):
            length, slot_ranks = _steps(pi[row], int(widths[row]), valid[row], ranks[row])
            shown = ranks[row][positions[row, : widths[row]]]
            prop[row, : widths[row]] = length @ (slot_ranks == shown[None, :])
        return slates_from_positions(pool, positions, prop)

    def action_dist(self, pool: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
        """π_a / k in every filled slot under ``"random"``; the exact step-function sum under ``"score"``."""
        pool, scores = check_pool(pool, scores, k)
        valid, n_valid = _valid(pool)
        widths = np.minimum(k, n_valid)
        pi = self._inclusion(scores, valid, widths)
        n, m = pool.shape
        k = min(k, m)
        if self.order == "random":
            filled = np.arange(k)[None, :] < widths[:, None]
            return pi[:, :, None] / np.maximum(widths, 1)[:, None, None] * filled[:, None, :]
        ranks = _score_ranks(scores, valid)
        out = np.zeros((n, m, k))
        for row in np.flatnonzero(widths):
            width = int(widths[row])
            length, slot_ranks = _steps(pi[row], width, valid[row], ranks[row])
            at = np.argsort(ranks[row])[slot_ranks]  # pool positions in slot order, one row per step
            np.add.at(out[row], (at, np.broadcast_to(np.arange(width), at.shape)),
                      np.broadcast_to(length[:, None], at.shape))
        return out


def _systematic(pi: np.ndarray, widths: np.ndarray, starts: np.ndarray, valid: np.ndarray, k: int) -> np.ndarray:
    """Pool positions [rounds, k] of each round's systematic sample from ``starts``, ascending, PAD past its width.

    Point t + u falls on the item whose cumulative π interval holds it; all rounds go through one searchsorted
    by shifting round r's intervals and points by r·(k + 1).
    """
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


def _steps(pi: np.ndarray, width: int, valid: np.ndarray, ranks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The systematic sample of one round as a step function of its start u ∈ [0, 1): the length of each step
    [steps] and the score ranks of its sample in slot order [steps, width]."""
    cum = np.cumsum(pi)
    cum *= width / cum[-1]
    edges = np.unique(np.concatenate(([0.0, 1.0], cum % 1.0)))
    length = np.diff(edges)
    keep = length > 0
    starts = (edges[:-1] + edges[1:])[keep] / 2
    last = len(pi) - 1 - int(np.argmax(valid[::-1]))
    picked = np.minimum(np.searchsorted(cum, starts[:, None] + np.arange(width)[None, :], side="right"), last)
    return length[keep], np.sort(ranks[picked], axis=1)


def _score_ranks(scores: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Each pool entry's rank by descending score (stable: earlier position first; NaN and PAD last)."""
    key = np.where(valid & ~np.isnan(scores), -scores, np.inf)
    order = np.argsort(key, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(scores.shape[1])[None, :], axis=1)
    return ranks


def _gather(values: np.ndarray, positions: np.ndarray, m: int) -> np.ndarray:
    """values[r, positions[r, l]], with ``m`` (after every rank) on PAD slots."""
    return np.where(positions >= 0, np.take_along_axis(values, np.maximum(positions, 0), axis=1), m)


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
