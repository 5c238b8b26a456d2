"""The online-state interface: ``StateStore`` (recent histories, exposure counts, bandit statistics and the events
the service ingests), its optional batched reads, and helpers that use them where a store offers them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from rankstack.events import Event


@runtime_checkable
class StateStore(Protocol):
    """Online state. Implementations: SQLite in WAL mode (embedded default) and Redis."""

    def add_events(self, events: Sequence[Event]) -> int:
        """Durably store events (idempotent on ``event_id``) before returning; returns how many were new."""
        ...

    def recent_items(self, user_id: str, n: int, *, events: Sequence[str] = ("click", "conversion")) -> list[str]:
        """The user's last ``n`` items with an event in ``events``, oldest first."""
        ...

    def exposure_counts(self, user_id: str, *, since: float, events: Sequence[str] = ("impression",)) -> dict[str, int]:
        """Item id → the user's number of ``events`` at or after ``since`` (frequency caps)."""
        ...

    def bandit_stats(self, arm_ids: Sequence[str]) -> dict[str, tuple[float, float]]:
        """Arm → (pulls, reward sum) of exploration statistics."""
        ...

    def healthy(self) -> bool:
        """True when the store answers (readiness)."""
        ...



@runtime_checkable
class BatchStateReads(Protocol):
    """A state store that answers the reads of a whole request batch in one round trip (both built-in stores)."""

    def recent_items_many(self, user_ids: Sequence[str], n: int, *,
                          events: Sequence[str] = ("click", "conversion")) -> list[list[str]]:
        """``recent_items`` of each user, in order."""
        ...

    def exposure_counts_many(self, user_ids: Sequence[str], *, since: float,
                             events: Sequence[str] = ("impression",)) -> list[dict[str, int]]:
        """``exposure_counts`` of each user, in order."""
        ...


def recent_items_many(state: StateStore, user_ids: Sequence[str], n: int, *,
                      events: Sequence[str] = ("click", "conversion")) -> list[list[str]]:
    """Each user's recent items: one batched read where the store offers it, else one read per user."""
    many = getattr(state, "recent_items_many", None)  # not isinstance: a Protocol check costs ~10 us per call
    if callable(many):
        return list(many(user_ids, n, events=events))
    return [state.recent_items(u, n, events=events) for u in user_ids]


def latest_times_many(state: StateStore, user_ids: Sequence[str], *,
                      events: Sequence[str] = ("click", "conversion")) -> list[float | None]:
    """Each user's latest event time of a kind in ``events`` where the store offers the read (both built-in
    stores do); None for every user otherwise."""
    latest = getattr(state, "latest_times_many", None)
    if callable(latest):
        return list(latest(user_ids, events=events))
    return [None for _ in user_ids]


def fresh_times(state: StateStore, user_ids: Sequence[str]) -> np.ndarray:
    """:func:`latest_times_many` of the users' clicks and conversions as float seconds [B] (NaN: none, or the
    store failed: a feature read never fails a request)."""
    try:
        times = latest_times_many(state, user_ids)
    except Exception:
        return np.full(len(user_ids), np.nan)
    return np.array([np.nan if t is None else t for t in times], dtype=np.float64)


def exposure_counts_many(state: StateStore, user_ids: Sequence[str], *, since: float,
                         events: Sequence[str] = ("impression",)) -> list[dict[str, int]]:
    """Each user's exposure counts: one batched read where the store offers it, else one read per user."""
    many = getattr(state, "exposure_counts_many", None)
    if callable(many):
        return list(many(user_ids, since=since, events=events))
    return [state.exposure_counts(u, since=since, events=events) for u in user_ids]
