"""Reading online state without letting a failing or hung store fail or stall the request: degrade, then recover.

Reads run on a few threads of their own (``BoundedCalls``) and a request waits for one at most its budget (the
service's ``state_timeout_ms``, capped by what is left of its deadline): a store that hangs (Redis stopped, a
dead network link) costs a request that much, never the store client's socket timeout, and never blocks the
event loop longer. A store whose reads are local (SQLite) is read on the request's thread once its reads have
been fast, since the thread hop costs more than such a read (``BoundedCalls``). A failed or late read opens the
breaker: reads skip the store for a pause that doubles with each failed retry after one (``state_retry_s``,
then twice that, … up to ``state_retry_max_s``) and closes at the first read or write that succeeds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

from rankstack.events import Event
from rankstack.pipeline.cost import InlineTrust
from rankstack.state.store import StateStore, exposure_counts_many, latest_times_many, recent_items_many

log = logging.getLogger(__name__)
T = TypeVar("T")


class StoreBusyError(Exception):
    """Every reader thread is still waiting on the store: a new read would only queue behind them."""


class BoundedCalls:
    """Runs calls on at most ``threads`` threads; the caller waits at most a timeout. When every thread is still
    busy (a hung store), a new call fails at once with ``StoreBusyError`` instead of queueing.

    With ``inline_after`` > 0 (stores whose reads are local, ``local_reads``: SQLite), once the last
    ``inline_after`` calls each returned within ``inline_share`` of their timeout, calls run on the caller's
    thread instead: handing a read to a thread and back cost ~1 ms of CPU per recommend on the 2-core box, a
    fifth of the request (``docs/benchmarks.md``, "Issue 20, eighth session"). An inline call cannot be cut off:
    one that raises or overruns its timeout is answered as it ends (its value kept, late) and sends the calls
    after it back to the threads until they have been fast ``inline_after`` times again. A store that hangs from
    the start is never read inline; one that hangs later costs that one read's wait."""

    def __init__(self, threads: int = 2, name: str = "rankstack-state", *, inline_after: int = 0,
                 inline_share: float = 0.25) -> None:
        self._free = threading.BoundedSemaphore(threads)
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix=name)
        self._trust = InlineTrust(inline_after, inline_share)

    @property
    def inline(self) -> bool:
        """Whether the next call runs on the caller's thread."""
        return self._trust.earned

    def call(self, fn: Callable[[], T], timeout_s: float) -> T:
        """``fn()`` on a reader thread (or inline, see the class); ``TimeoutError`` after ``timeout_s`` (the call
        runs on, unheeded)."""
        start = time.perf_counter()
        if self.inline:
            try:
                value = fn()
            except BaseException:
                self._trust.lose()
                raise
            self._record(time.perf_counter() - start, timeout_s)
            return value
        if not self._free.acquire(blocking=False):
            raise StoreBusyError("every state reader thread is still waiting on the store")
        try:
            future: Future[T] = self._pool.submit(fn)
        except BaseException:
            self._free.release()
            raise
        future.add_done_callback(lambda _: self._free.release())
        try:
            value = future.result(timeout=timeout_s)
        except FutureTimeout:
            self._trust.lose()
            raise TimeoutError(f"no answer within {timeout_s * 1000:.0f} ms") from None
        except BaseException:
            self._trust.lose()
            raise
        self._record(time.perf_counter() - start, timeout_s)
        return value

    def _record(self, seconds: float, timeout_s: float) -> None:
        """Count a call that returned: fast ones in a row earn the inline path, a slow one loses it."""
        was_inline = self.inline
        if not self._trust.judge(seconds, timeout_s) and was_inline:
            log.warning("state read took %.1f ms inline (budget %.1f ms): reads go back to threads",
                        seconds * 1000, timeout_s * 1000)

    def close(self) -> None:
        """Stop the threads once their calls return (queued calls are dropped)."""
        self._pool.shutdown(wait=False, cancel_futures=True)


class StateBreaker:
    """Shared by all requests: after a failure the store is skipped for ``retry_s``, doubled for every further
    failure in a row up to ``max_retry_s``; a success closes it."""

    def __init__(self, retry_s: float, max_retry_s: float = 30.0) -> None:
        self.retry_s = retry_s
        self.max_retry_s = max(max_retry_s, retry_s)
        self.open_until = 0.0
        self.failures = 0
        self._lock = threading.Lock()

    def is_open(self) -> bool:
        """True while reads should skip the store."""
        return time.monotonic() < self.open_until

    def pause_s(self) -> float:
        """How long the next failure will skip the store."""
        return min(self.retry_s * 2.0 ** self.failures, self.max_retry_s)

    def trip(self) -> None:
        """Record a failure: skip the store for the current pause, and double the next one. Failures while it is
        already open (event writes keep trying) neither extend nor double the pause: one failed probe per pause."""
        with self._lock:
            now = time.monotonic()
            if now < self.open_until:
                return
            self.open_until = now + self.pause_s()
            self.failures += 1

    def reset(self) -> None:
        """Record a success: use the store again at once; the next failure pauses for ``retry_s`` again."""
        with self._lock:
            self.open_until = 0.0
            self.failures = 0


class GuardedState:
    """A per-request ``StateStore`` view: failed, late or skipped reads answer empty and mark the request degraded.

    Each read runs on ``reader`` and waits at most ``timeout_s``, and never past ``deadline_at`` (a
    ``time.perf_counter`` reading; None: no deadline)."""

    def __init__(self, inner: StateStore, breaker: StateBreaker, reader: BoundedCalls, *, timeout_s: float,
                 deadline_at: float | None = None) -> None:
        self.inner = inner
        self.breaker = breaker
        self.reader = reader
        self.timeout_s = timeout_s
        self.deadline_at = deadline_at
        self.used = False
        self.degraded = False
        self.elapsed_s = 0.0

    def _read(self, fn: Callable[[], T], empty: T) -> T:
        """Run one read through the breaker within the budget, timing it."""
        self.used = True
        if self.breaker.is_open():
            self.degraded = True
            return empty
        t0 = time.perf_counter()
        budget = self.timeout_s if self.deadline_at is None else min(self.timeout_s, self.deadline_at - t0)
        try:
            value = self.reader.call(fn, max(budget, 0.001))
        except Exception as exc:
            pause = self.breaker.pause_s()
            self.breaker.trip()
            log.warning("state store read failed, serving without fresh state for %.0f s: %s", pause, exc)
            self.degraded = True
            return empty
        finally:
            self.elapsed_s += time.perf_counter() - t0
        if self.breaker.failures:
            self.breaker.reset()
        return value

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

    def latest_times_many(self, user_ids: Sequence[str], *,
                          events: Sequence[str] = ("click", "conversion")) -> list[float | None]:
        """The store's answers, or no times when it is down."""
        return self._read(lambda: latest_times_many(self.inner, user_ids, events=events), [None for _ in user_ids])

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


class HealthProbe:
    """``state.healthy()`` on a thread of its own, waited for at most ``timeout_s`` (False when late: a hung store).
    Callers that ask while a check runs share its answer, so concurrent probes never queue or fail each other."""

    def __init__(self, state: StateStore, timeout_s: float) -> None:
        self.state = state
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="rankstack-health")
        self._running: Future[bool] | None = None

    def healthy(self) -> bool:
        """Whether the store answered its health check in time."""
        with self._lock:
            if self._running is None or self._running.done():
                self._running = self._pool.submit(self.state.healthy)
            running = self._running
        try:
            return bool(running.result(timeout=self.timeout_s))
        except FutureTimeout:
            log.warning("state store health check took over %.0f ms", self.timeout_s * 1000)
        except Exception as exc:
            log.warning("state store health check failed: %s", exc)
        return False

    def close(self) -> None:
        """Stop the thread once a running check returns."""
        self._pool.shutdown(wait=False, cancel_futures=True)


class DurabilityWatch:
    """Checks a store's durability settings (``durability_problem``, Redis) once it first answers, at start or
    later when it was down then: logs a warning when acknowledged events could be lost and sets ``gauge``."""

    def __init__(self, state: StateStore, gauge: Any) -> None:
        self.state = state
        self.gauge = gauge
        self.done = not callable(getattr(state, "durability_problem", None))
        gauge.set(1 if self.done else -1)

    def check(self) -> None:
        """Check once the store answers (call after a successful health check); later calls do nothing."""
        if self.done:
            return
        try:
            problem = self.state.durability_problem()  # type: ignore[attr-defined]
        except Exception:  # down again: try after the next successful health check
            return
        self.done = True
        self.gauge.set(0 if problem else 1)
        if problem:
            log.warning("%s", problem)
