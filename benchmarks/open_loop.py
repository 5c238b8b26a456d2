"""Open-loop HTTP/1.1 load on loopback: requests start on a fixed schedule whatever the answers.

A closed-loop generator (wrk, or any client that sends the next request when the last one returns) waits for a
slow answer before it sends the next request, so the requests that would have queued behind a stall are never
sent and never measured (coordinated omission). Here each request has a *scheduled* start — a constant arrival
rate, or Poisson arrivals at that rate — and its latency counts from that start, so a request that waited for a
free connection, or behind a busy generator, is charged the wait.

The client is one asyncio process (uvloop when installed) speaking raw keep-alive HTTP/1.1 over a pool of
connections, responses parsed by httptools (uvicorn's parser): a request takes the least recently used idle
connection, opens another when none is idle (up to ``max_connections``), else waits for one — the wait counts.
Every request carries a timeout counted from its scheduled start; the run is bounded in count (the schedule) and
in time (``drain_s`` after the last scheduled start, whatever is still open is cancelled and counted as a
timeout). Loopback only: :class:`Pool` refuses any other host.

Used by ``benchmarks/serve_load.py``; tested in ``tests/benchmarks/test_open_loop.py`` against a local server.
"""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import os
import resource
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httptools
import numpy as np

T = TypeVar("T")
CONNECT_ERROR = 0  # Reply.status when the connection failed or closed before the answer
TIMEOUT = -1  # Reply.status when no answer came within the timeout (counted from the scheduled start)
_LOOPBACK = {"localhost"}


@dataclass(frozen=True, slots=True)
class Reply:
    """One answer: HTTP ``status`` (or ``CONNECT_ERROR`` / ``TIMEOUT``), its body and headers (lower-cased names),
    and ``done``, the ``time.perf_counter()`` when the last byte was parsed (or the failure noticed)."""

    status: int
    body: bytes
    done: float
    headers: dict[bytes, bytes] = field(default_factory=dict)


def request_bytes(method: str, path: str, body: bytes = b"", *, host: str = "127.0.0.1",
                  content_type: str = "application/json", headers: Sequence[tuple[str, str]] = ()) -> bytes:
    """One HTTP/1.1 keep-alive request, ready to write (Content-Length framing; no body for an empty ``body``)."""
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
    if body or method in ("POST", "PUT"):
        head += f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + body


class _Connection(asyncio.Protocol):
    """One kept-alive connection carrying one request at a time; its answer resolves the pending future."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[Reply] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.chunks: list[bytes] = []
        self.headers: dict[bytes, bytes] = {}
        self.keep = True
        self.closed = False

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(CONNECT_ERROR, f"bad response: {exc}".encode())

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool._lost(self)
        self._fail(CONNECT_ERROR, b"connection closed before the answer")

    # -- httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        done = time.perf_counter()
        self.keep = self.parser.should_keep_alive()
        reply = Reply(self.parser.get_status_code(), b"".join(self.chunks), done, self.headers)
        self.chunks, self.headers = [], {}
        self._finish(reply)

    # -- requests
    def send(self, raw: bytes, deadline: float) -> asyncio.Future[Reply]:
        """Write ``raw``; the future gets the answer, or ``TIMEOUT`` at ``deadline`` (perf_counter time)."""
        loop = asyncio.get_running_loop()
        self.waiter = loop.create_future()
        self.timer = loop.call_later(max(deadline - time.perf_counter(), 0.0), self._expire)
        assert self.transport is not None
        self.transport.write(raw)
        return self.waiter

    def _expire(self) -> None:
        self.timer = None
        self._fail(TIMEOUT, b"timed out")
        self.close()  # a late answer must not be read as the next request's

    def _fail(self, status: int, why: bytes) -> None:
        self.keep = False
        self._finish(Reply(status, why, time.perf_counter()))

    def _finish(self, reply: Reply) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(reply)

    def close(self) -> None:
        """Close the socket now (pending answers are failed by ``connection_lost``)."""
        self.keep = False
        if self.transport is not None and not self.closed:
            self.transport.abort()


class Pool:
    """Kept-alive connections to one loopback ``host:port``; :meth:`call` sends a request on a free one."""

    def __init__(self, host: str, port: int, *, max_connections: int = 1024, timeout_s: float = 5.0) -> None:
        if not _is_loopback(host):
            raise ValueError(f"host {host!r}: the load generator only targets loopback (127.0.0.0/8, ::1, localhost)")
        if max_connections < 1:
            raise ValueError(f"max_connections must be >= 1, got {max_connections}")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        self.host, self.port = host, port
        self.max_connections, self.timeout_s = max_connections, timeout_s
        self.opened = 0  # connections opened so far (a measure of how often the pool ran dry)
        self._open: set[_Connection] = set()
        self._connecting = 0
        self._idle: deque[_Connection] = deque()
        self._waiters: deque[asyncio.Future[_Connection | None]] = deque()

    @property
    def size(self) -> int:
        """Connections open now."""
        return len(self._open)

    async def prepare(self, n: int) -> None:
        """Open ``n`` connections ahead of the run, so that the schedule does not pay the connects."""
        conns = await asyncio.gather(*(self._connect() for _ in range(min(n, self.max_connections) - self.size)))
        for conn in conns:
            self._release(conn)

    async def _connect(self) -> _Connection:
        self._connecting += 1
        try:
            loop = asyncio.get_running_loop()
            _, conn = await loop.create_connection(lambda: _Connection(self), self.host, self.port)
        finally:
            self._connecting -= 1
        self._open.add(conn)
        self.opened += 1
        return conn

    async def call(self, raw: bytes, start: float) -> Reply:
        """Send ``raw`` and await its answer; the timeout counts from ``start`` (the scheduled start,
        ``perf_counter`` time), waiting for a connection included."""
        deadline = start + self.timeout_s
        conn = self._take_idle()
        if conn is None:
            if self.size + self._connecting < self.max_connections:
                try:
                    conn = await self._connect()
                except OSError as exc:
                    return Reply(CONNECT_ERROR, str(exc).encode(), time.perf_counter())
            else:
                conn = await self._wait_for_idle(deadline)
                if conn is None:
                    return Reply(TIMEOUT, b"no free connection before the timeout", time.perf_counter())
        reply = await conn.send(raw, deadline)
        if conn.keep and not conn.closed:
            self._release(conn)
        else:
            conn.close()
            self._open.discard(conn)
        return reply

    def _take_idle(self) -> _Connection | None:
        while self._idle:
            conn = self._idle.popleft()
            if not conn.closed and conn.transport is not None and not conn.transport.is_closing():
                return conn
        return None

    async def _wait_for_idle(self, deadline: float) -> _Connection | None:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[_Connection | None] = loop.create_future()
        self._waiters.append(waiter)
        timer = loop.call_later(max(deadline - time.perf_counter(), 0.0),
                                lambda: waiter.done() or waiter.set_result(None))
        conn = await waiter
        timer.cancel()
        return conn

    def _release(self, conn: _Connection) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self._idle.append(conn)

    def _lost(self, conn: _Connection) -> None:
        self._open.discard(conn)

    def close(self) -> None:
        """Close every connection."""
        for conn in list(self._open):
            conn.close()
        self._open.clear()
        self._idle.clear()


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def arrival_offsets(phases: Sequence[tuple[float, float]], *, poisson: bool = False, seed: int = 0,
                    max_requests: int = 10_000_000) -> np.ndarray:
    """Scheduled starts (seconds from the run's start) for ``phases`` of (rate req/s, seconds), back to back:
    evenly spaced at 1/rate, or with exponential gaps of mean 1/rate (``poisson``); at most ``max_requests``."""
    rng = np.random.default_rng(seed)
    out, t0 = [], 0.0
    for rate, seconds in phases:
        if not (rate > 0 and np.isfinite(rate)) or not (seconds > 0 and np.isfinite(seconds)):
            raise ValueError(f"phase ({rate}, {seconds}): rate and seconds must be finite and > 0")
        n = int(np.ceil(rate * seconds * (1.5 if poisson else 1.0))) + 1
        if poisson:
            times = np.cumsum(rng.exponential(1.0 / rate, n))
            times = times - times[0]
        else:
            times = np.arange(n) / rate
        out.append(t0 + times[times < seconds])
        t0 += seconds
    offsets = np.concatenate(out) if out else np.zeros(0)
    if len(offsets) > max_requests:
        raise ValueError(f"the schedule holds {len(offsets):,} requests, more than max_requests={max_requests:,}")
    return offsets


@dataclass
class DriveReport:
    """How the generator kept its schedule: ``started`` (perf_counter of offset 0), the lag between each scheduled
    and actual launch (ms), the CPU the process spent (s) over ``wall_s``, requests cut off at the end."""

    started: float
    wall_s: float
    scheduled: int
    cancelled: int
    cpu_s: float
    lag_ms: np.ndarray

    def summary(self) -> dict[str, Any]:
        """JSON-ready: launch lag percentiles, CPU seconds and the share of one core the generator used."""
        lag = self.lag_ms if len(self.lag_ms) else np.zeros(1)
        return {"scheduled": self.scheduled, "cancelled": self.cancelled, "wall_s": round(self.wall_s, 2),
                "cpu_s": round(self.cpu_s, 2), "cpu_share": round(self.cpu_s / max(self.wall_s, 1e-9), 3),
                "launch_lag_p50_ms": round(float(np.percentile(lag, 50)), 3),
                "launch_lag_p99_ms": round(float(np.percentile(lag, 99)), 3),
                "launch_lag_max_ms": round(float(lag.max()), 3)}


async def drive(offsets: np.ndarray, job: Callable[[int, float], Awaitable[None]], *,
                drain_s: float = 10.0, tick_s: float = 0.001) -> DriveReport:
    """Start ``job(i, scheduled_at)`` at ``start + offsets[i]`` (perf_counter time) whatever the earlier jobs do;
    after the last start wait at most ``drain_s`` for the jobs still running, then cancel them.

    The loop wakes at most every ``tick_s`` (the event loop's timer resolution: 1 ms) and starts every job due, so
    a job starts up to about ``tick_s`` late; the lag counts in its latency and is reported (``lag_ms``)."""
    tasks: set[asyncio.Task[None]] = set()
    lags = np.zeros(len(offsets))
    cpu0 = _cpu_s()
    start = time.perf_counter() + 0.01
    loop = asyncio.get_running_loop()
    i, n = 0, len(offsets)
    while i < n:
        now = time.perf_counter()
        while i < n and start + offsets[i] <= now:
            task = loop.create_task(job(i, start + float(offsets[i])))  # type: ignore[arg-type]
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            lags[i] = now - (start + offsets[i])
            i += 1
        if i < n:  # never shorter than the loop's timer resolution: shorter sleeps spin the CPU the server needs
            await asyncio.sleep(max(start + float(offsets[i]) - time.perf_counter(), tick_s))
    cancelled = 0
    if tasks:
        _, pending = await asyncio.wait(set(tasks), timeout=drain_s)
        for task in pending:
            task.cancel()
        cancelled = len(pending)
        if pending:
            await asyncio.wait(pending)
    wall = time.perf_counter() - start
    return DriveReport(start, wall, n, cancelled, _cpu_s() - cpu0, lags * 1000.0)


def _cpu_s() -> float:
    """User + system CPU seconds of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on a fresh uvloop event loop (asyncio's when uvloop is missing), the garbage collector frozen
    and off meanwhile: a collection over the caller's heap would stall the schedule."""
    try:
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a serving dependency
        factory = None
    if os.environ.get("RANKSTACK_LOAD_LOOP") == "asyncio":
        factory = None
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(main)
    finally:
        gc.enable()
        gc.unfreeze()


def latency_summary(latency_ms: np.ndarray) -> dict[str, float | None]:
    """p50 / p90 / p99 / p99.9 / max / mean in ms (None each when there is nothing to summarise)."""
    keys = ("p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms", "mean_ms")
    if not len(latency_ms):
        return dict.fromkeys(keys, None)
    values = [*np.percentile(latency_ms, [50, 90, 99, 99.9]), latency_ms.max(), latency_ms.mean()]
    return {k: round(float(v), 3) for k, v in zip(keys, values, strict=True)}


def recovery_s(scheduled_s: np.ndarray, latency_ms: np.ndarray, ok: np.ndarray, *, after_s: float, until_s: float,
               threshold_ms: float, window_s: float = 1.0, step_s: float = 0.1) -> float | None:
    """Seconds from ``after_s`` until a sliding window (``window_s`` wide, by scheduled start) and every later one
    up to ``until_s`` holds only answered requests (``ok``) with p99 latency ≤ ``threshold_ms``; None if never.

    ``scheduled_s`` are the requests' scheduled starts (seconds from the run's start)."""
    starts = np.arange(after_s, max(until_s - window_s, after_s) + 1e-9, step_s)
    good = np.zeros(len(starts), bool)
    for w, t in enumerate(starts):
        inside = (scheduled_s >= t) & (scheduled_s < t + window_s)
        if not inside.any():
            good[w] = True
            continue
        good[w] = bool(ok[inside].all()) and float(np.percentile(latency_ms[inside], 99)) <= threshold_ms
    if not len(good) or not good[-1]:
        return None
    bad = np.flatnonzero(~good)
    first = 0 if not len(bad) else int(bad[-1]) + 1
    return round(float(starts[first] - after_s), 2)
