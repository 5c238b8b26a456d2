"""Exploration over a re-ranked pool: choose each request's slate and the propensity of every shown item.

ε-greedy reports π(item, slot | request), the probability that the policy puts this item in this slot
(the Open Bandit convention of the simulator's logging policies; per slot it sums to 1 over the pool).
Softmax shows its sampled items in score order, so it reports the inclusion probability
π(item ∈ slate | request) instead (it sums to k over the pool).
"""

from __future__ import annotations

import hashlib

import numpy as np

from rankstack.pipeline.config import ExplorationStage
from rankstack.simulation.policies import capped_inclusion, uniform_slates


class RequestDraws:
    """The random draws of one request, reproducible from (seed, request id, user id).

    The first uniform comes straight from the request's hash, and a full generator is seeded only when more is
    drawn: ε-greedy flips one coin on most requests, and seeding a generator costs more than the rest of it.
    """

    def __init__(self, seed: int, request_id: str, user_id: str) -> None:
        digest = hashlib.blake2b(f"{seed}\x1f{request_id}\x1f{user_id}".encode(), digest_size=16).digest()
        self._first: float | None = (int.from_bytes(digest[:8], "little") >> 11) / float(1 << 53)
        self._seed = int.from_bytes(digest[8:], "little")
        self._generator: np.random.Generator | None = None

    def random(self) -> float:
        """One uniform draw in [0, 1)."""
        if self._first is not None:
            first, self._first = self._first, None
            return first
        return float(self.generator().random())

    def generator(self) -> np.random.Generator:
        """A numpy generator for everything past single draws (seeded from the hash, created once)."""
        if self._generator is None:
            self._generator = np.random.default_rng(self._seed)
        return self._generator


Draws = np.random.Generator | RequestDraws


def _generator(rng: Draws) -> np.random.Generator:
    return rng.generator() if isinstance(rng, RequestDraws) else rng


def request_rng(seed: int, request_id: str, user_id: str) -> RequestDraws:
    """The draws of one request: the same request gets the same draws anywhere."""
    return RequestDraws(seed, request_id, user_id)


def greedy(pool: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray | None]:
    """The first ``k`` pool items (already in score order); deterministic, so no propensity."""
    return pool[:k], None


def epsilon_greedy(pool: np.ndarray, k: int, epsilon: float, rng: Draws) -> tuple[np.ndarray, np.ndarray]:
    """With probability ε a uniform random slate of the pool, else the top ``k``.

    π(i, p) = (1 − ε)·1[i is the p-th pool item] + ε / |pool|.
    """
    k = min(k, len(pool))
    top = pool[:k]
    if rng.random() < epsilon:
        chosen = uniform_slates(1, np.arange(len(pool)), k, _generator(rng))[0]
        items = pool[chosen]
    else:
        items = top
    return items, epsilon / len(pool) + (1.0 - epsilon) * (items == top)


def softmax_sample(pool: np.ndarray, scores: np.ndarray, k: int, temperature: float,
                   rng: Draws) -> tuple[np.ndarray, np.ndarray]:
    """``k`` distinct items with inclusion π_i ∝ exp(s_i / T) (capped at 1, Σπ = k), by systematic sampling,
    shown in descending score order; the propensity reported is the inclusion probability π_i.
    """
    k = min(k, len(pool))
    z = np.asarray(scores, np.float64) / temperature
    finite = np.isfinite(z)
    z = np.where(finite, z, z[finite].min() - 50.0 if finite.any() else 0.0)  # unscored items: last, still > 0
    w = np.exp(z - z.max())
    pi = capped_inclusion(w[None, :], k)[0]
    cum = np.cumsum(pi)
    cum *= k / cum[-1]
    points = rng.random() + np.arange(k)
    picked = np.minimum(np.searchsorted(cum, points, side="right"), len(pool) - 1)
    picked = np.unique(picked)
    if len(picked) < k:  # floating-point ties at a boundary; fill with the most likely unpicked items
        rest = np.setdiff1d(np.argsort(-pi, kind="stable"), picked, assume_unique=True)
        picked = np.concatenate([picked, rest[: k - len(picked)]])
    order = picked[np.argsort(-np.asarray(scores)[picked], kind="stable")]
    return pool[order], pi[order]


def explore(pool: np.ndarray, scores: np.ndarray, k: int, stage: ExplorationStage,
            rng: Draws) -> tuple[np.ndarray, np.ndarray | None]:
    """(slate item ids, propensities or None) for one request; ``pool``/``scores`` are in re-ranked order."""
    if len(pool) == 0:
        return pool, None
    if stage.policy == "greedy":
        return greedy(pool, k)
    if stage.policy == "epsilon_greedy":
        return epsilon_greedy(pool, k, stage.epsilon, rng)
    return softmax_sample(pool, scores, k, stage.temperature, rng)
