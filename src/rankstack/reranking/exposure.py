"""Recent per-user events (impressions, clicks, conversions) that frequency caps and history filters read.

The serving layer keeps this state (SQLite, Redis, …) behind :class:`ExposureStore`; offline code uses
:class:`InMemoryExposureStore`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class ExposureStore(Protocol):
    """Answers: how many events of the given kinds did this user have with each item since a time?"""

    def counts(self, user_id: int, *, since: float, events: Collection[str]) -> dict[int, int]:
        """Item id → number of the user's events of a kind in ``events`` with timestamp ≥ ``since``."""
        ...


class InMemoryExposureStore:
    """Events kept in per-user Python lists; fine for offline replay, tests and small simulations."""

    def __init__(self) -> None:
        self._items: dict[int, list[int]] = {}
        self._times: dict[int, list[float]] = {}
        self._events: dict[int, list[str]] = {}

    def record(self, user_id: int, item_id: int, event: str, timestamp: float) -> None:
        """Add one event."""
        u = int(user_id)
        self._items.setdefault(u, []).append(int(item_id))
        self._times.setdefault(u, []).append(float(timestamp))
        self._events.setdefault(u, []).append(event)

    def record_slate(self, user_id: int, item_ids: Iterable[int], timestamp: float, event: str = "impression") -> None:
        """Add one ``event`` per shown item (padding ``-1`` is skipped)."""
        for item in item_ids:
            if int(item) >= 0:
                self.record(user_id, int(item), event, timestamp)

    def counts(self, user_id: int, *, since: float, events: Collection[str]) -> dict[int, int]:
        """Item id → count of the user's ``events`` at or after ``since``."""
        u = int(user_id)
        if u not in self._items:
            return {}
        items = np.asarray(self._items[u], dtype=np.int64)
        keep = (np.asarray(self._times[u]) >= since) & np.isin(np.asarray(self._events[u]), list(events))
        ids, n = np.unique(items[keep], return_counts=True)
        return dict(zip(ids.tolist(), n.tolist(), strict=True))

    def __len__(self) -> int:
        return sum(len(v) for v in self._items.values())
