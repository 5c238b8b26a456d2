"""Reading online state without letting a failing store fail the request: degrade, then recover."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from rankstack.pipeline.api import Event, StateStore, exposure_counts_many, recent_items_many

log = logging.getLogger(__name__)
T = TypeVar("T")


class StateBreaker:
    """Shared by all requests: after a failure the store is skipped for ``retry_s``, then tried again."""

    def __init__(self, retry_s: float) -> None:
        self.retry_s = retry_s
        self.open_until = 0.0

    def is_open(self) -> bool:
        """True while reads should skip the store."""
        return time.monotonic() < self.open_until

    def trip(self) -> None:
        """Record a failure: skip the store for ``retry_s``."""
        self.open_until = time.monotonic() + self.retry_s

    def reset(self) -> None:
        """Record a success: use the store again at once."""
        self.open_until = 0.0


class GuardedState:
    """A per-request ``StateStore`` view: failed or skipped reads answer empty and mark the request degraded."""

    def __init__(self, inner: StateStore, breaker: StateBreaker) -> None:
        self.inner = inner
        self.breaker = breaker
        self.used = False
        self.degraded = False
        self.elapsed_s = 0.0

    def _read(self, fn: Callable[[], T], empty: T) -> T:
        """Run one read through the breaker, timing it."""
        self.used = True
        if self.breaker.is_open():
            self.degraded = True
            return empty
        t0 = time.perf_counter()
        try:
            return fn()
        except Exception as exc:
            log.warning("state store read failed, serving without fresh state: %s", exc)
            self.breaker.trip()
            self.degraded = True
            return empty
        finally:
            self.elapsed_s += time.perf_counter() - t0

    def add_events(self, events: Sequence[Event]) -> int:
        """Writes are not guarded: the events endpoint must see the failure and answer 503."""
        return self.inner.add_events(events)

    def recent_items(self, user_id: str, n: int, *, events: Sequence[str] = ("click", "conversion")) -> list[str]:
        """The store's answer, or no history when it is down."""
        return self._read(lambda: self.inner.recent_items(user_id, n, events=events), [])

    def exposure_counts(self, user_id: str, *, since: float, events: Sequence[str] = ("impression",)) -> dict[str, int]:
        """The store's answer, or no exposures when it is down."""
        return self._read(lambda: self.inner.exposure_counts(user_id, since=since, events=events), {})

    def recent_items_many(self, user_ids: Sequence[str], n: int, *,
                          events: Sequence[str] = ("click", "conversion")) -> list[list[str]]:
        """The store's answers (one batched read where it offers one), or no histories when it is down."""
        return self._read(lambda: recent_items_many(self.inner, user_ids, n, events=events), [[] for _ in user_ids])

    def exposure_counts_many(self, user_ids: Sequence[str], *, since: float,
                             events: Sequence[str] = ("impression",)) -> list[dict[str, int]]:
        """The store's answers (one batched read where it offers one), or no exposures when it is down."""
        return self._read(lambda: exposure_counts_many(self.inner, user_ids, since=since, events=events),
                          [{} for _ in user_ids])

    def bandit_stats(self, arm_ids: Sequence[str]) -> dict[str, tuple[float, float]]:
        """The store's answer, or zero statistics when it is down."""
        return self._read(lambda: self.inner.bandit_stats(arm_ids), {arm: (0.0, 0.0) for arm in arm_ids})

    def healthy(self) -> bool:
        """Whether the underlying store answers."""
        return self.inner.healthy()
