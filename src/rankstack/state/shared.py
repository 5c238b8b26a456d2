"""What both state stores share: the error they raise when unavailable, and event normalisation."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from rankstack.errors import RankstackError
from rankstack.events import Event

DEFAULT_MAX_HISTORY = 1_000
# Idempotency window: an event_id is remembered this long after it was first stored; a redelivery within it is
# acknowledged as a duplicate, a later one may be stored again. SQLite prunes whole events that old (by arrival).
DEFAULT_RETENTION_S = 30 * 86_400.0


class StateStoreError(RankstackError):
    """The state store cannot be reached or refused the operation; nothing was acknowledged."""


def with_timestamps(events: Sequence[Event], now: float | None = None) -> list[Event]:
    """Events with a missing ``timestamp`` stamped with the arrival time (one clock reading per batch)."""
    stamp = time.time() if now is None else now
    return [e if e.timestamp is not None else e.model_copy(update={"timestamp": stamp}) for e in events]


def merge_recent(rows: Iterable[tuple[float, int, str]], n: int) -> list[str]:
    """The ``n`` latest ``(timestamp, sequence, item_id)`` rows' items, oldest first (ties by arrival order)."""
    latest = sorted(rows, reverse=True)[:n]
    return [item for _, _, item in reversed(latest)]
