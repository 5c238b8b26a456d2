"""The ``Ranker`` protocol: per-objective scores over a block of candidates [batch, C] (internal ids, -1 pads).

A pipeline holds one ranker and knows it only through this protocol: ``score(batch)`` returns one array
[B, C] per name in ``objectives``, NaN where the ranker has no score (pads, rows it cannot score); which
objective orders the slate is the pipeline config's business (``ranker.order_by``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from rankstack.retrieval.source import CandidateSource


class Exposures(Protocol):
    """Counts of a request row's events per internal item id (the online state store, seen row by row)."""

    def counts(self, user_id: int, *, since: float, events: Collection[str]) -> dict[int, int]:
        """Internal item id → the row's user's events of a kind in ``events`` at or after ``since``."""
        ...


_NO_SOURCES: Mapping[str, CandidateSource] = {}
_NO_SCORES: Mapping[str, np.ndarray] = {}


@dataclass(slots=True)
class RankBatch:
    """What a ranker may read about a batch of requests; only ``item_ids`` is required of every caller.

    ``user_ids`` [B] internal (-1: unknown user); ``item_ids`` [B, C] candidates (-1 pads); ``histories`` each
    row's recent items, oldest first; ``contexts`` each request's context mapping; ``source_scores`` each
    source's retrieval score [B, C] (NaN where it did not retrieve the item); ``sources`` the pipeline's fitted
    sources (for score features); ``exposures`` the row's logged events, or None without a state store;
    ``times`` each request's time (epoch seconds, NaN: unknown) and ``fresh_times`` the time of each row's latest
    fresh click or conversion from the state store (NaN: none), or None when not gathered.
    """

    user_ids: np.ndarray
    item_ids: np.ndarray
    histories: Sequence[np.ndarray] = ()
    contexts: Sequence[Mapping[str, Any]] = ()
    source_scores: Mapping[str, np.ndarray] = field(default_factory=lambda: _NO_SCORES)
    sources: Mapping[str, CandidateSource] = field(default_factory=lambda: _NO_SOURCES)
    exposures: Exposures | None = None
    times: np.ndarray | None = None
    fresh_times: np.ndarray | None = None


class Ranker(Protocol):
    """Scores given candidates per objective; everything a pipeline calls on its ranker.

    ``needs_history``: rows with an empty history get NaN (the pipeline marks them ``skipped``).
    """

    @property
    def name(self) -> str:
        """The ranker's name (in logs and errors)."""
        ...

    @property
    def objectives(self) -> tuple[str, ...]:
        """The keys of ``score``'s result."""
        ...

    @property
    def needs_history(self) -> bool:
        """Whether rows with an empty history go unscored."""
        ...

    def score(self, batch: RankBatch) -> dict[str, np.ndarray]:
        """One array [B, C] of float64 per objective; NaN on pads and where the ranker has no score."""
        ...

    def keep_states(self, capacity: int) -> None:
        """Keep up to ``capacity`` per-user states between calls (0: none); a no-op for stateless rankers."""
        ...

    def warm(self, histories: Sequence[np.ndarray]) -> int:
        """Compute and keep the states of these histories ahead of requests; returns how many were computed."""
        ...


class StoredRanker(Ranker, Protocol):
    """A ranker the artifact writer can store; its class reads it back with ``load(root, rel, sources)``."""

    def save(self, root: Path, sources: Mapping[str, CandidateSource]) -> str:
        """Write the ranker under artifact folder ``root``; returns its path relative to ``root``."""
        ...
