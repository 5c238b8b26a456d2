"""Where a policy's random draws come from: one generator for a batch, or one reproducible stream per request.

A policy asks its draws for the same things in the same order whatever their source: one uniform per round,
then uniform slates for the rounds that explore, then further uniforms (slot shuffles). With one
``np.random.Generator`` the batch's draws come from it in that order; with one :class:`RequestDraws` per
round, each round draws from its own stream, so a request gets the same slate alone or in any batch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np


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


def request_rng(seed: int, request_id: str, user_id: str) -> RequestDraws:
    """The draws of one request: the same request gets the same draws anywhere."""
    return RequestDraws(seed, request_id, user_id)


Draws = np.random.Generator | Sequence[RequestDraws]


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


class RoundDraws:
    """The draws of ``rounds`` rounds, from one batch generator or from one :class:`RequestDraws` per round."""

    def __init__(self, rng: Draws, rounds: int) -> None:
        if not isinstance(rng, np.random.Generator) and len(rng) != rounds:
            raise ValueError(f"got {len(rng)} request draws for {rounds} rounds; pass one per round")
        self.rng = rng
        self.rounds = rounds

    def _stream(self, row: int) -> np.random.Generator:
        return self.rng if isinstance(self.rng, np.random.Generator) else self.rng[row].generator()

    def uniforms(self) -> np.ndarray:
        """One uniform per round [rounds]."""
        if isinstance(self.rng, np.random.Generator):
            return self.rng.random(self.rounds)
        return np.array([d.random() for d in self.rng], dtype=np.float64)

    def keys(self, k: int) -> np.ndarray:
        """``k`` uniforms per round [rounds, k] (slot shuffles)."""
        if isinstance(self.rng, np.random.Generator):
            return self.rng.random((self.rounds, k))
        return np.stack([self._stream(r).random(k) for r in range(self.rounds)]) if self.rounds else np.zeros((0, k))

    def slates(self, rows: np.ndarray, valid: np.ndarray, k: int) -> np.ndarray:
        """Uniform slates of pool positions [len(rows), k] for ``rows``, drawn over each row's valid positions.

        One generator and rows that share one valid mask: a single draw for all of them (the simulator's order);
        otherwise row by row, each from its own stream.
        """
        out = np.full((len(rows), k), -1, dtype=np.int64)
        if len(rows) == 0:
            return out
        if isinstance(self.rng, np.random.Generator) and (valid[rows] == valid[rows[0]]).all():
            idx = np.flatnonzero(valid[rows[0]])
            width = min(k, len(idx))
            out[:, :width] = uniform_slates(len(rows), idx, width, self.rng)
            return out
        for at, row in enumerate(rows):
            idx = np.flatnonzero(valid[row])
            width = min(k, len(idx))
            out[at, :width] = uniform_slates(1, idx, width, self._stream(int(row)))[0]
        return out
