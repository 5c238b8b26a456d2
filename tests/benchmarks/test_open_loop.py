"""The open-loop generator: schedules, latency from the scheduled start, timeouts, closed connections, bounds."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from http_stub import Answer, Stub
from open_loop import (
    CONNECT_ERROR,
    TIMEOUT,
    Pool,
    arrival_offsets,
    drive,
    latency_summary,
    recovery_s,
    request_bytes,
    run,
)

GET = request_bytes("GET", "/x")


async def ok(method: str, path: str, body: bytes) -> Answer:
    return Answer(body=b'{"path":"%s","n":%d}' % (path.encode(), len(body)))


def test_uniform_offsets_are_evenly_spaced_per_phase() -> None:
    offsets = arrival_offsets([(100, 1.0), (400, 0.5)])
    assert len(offsets) == 100 + 200
    assert np.allclose(np.diff(offsets[:100]), 0.01)
    assert np.allclose(np.diff(offsets[100:]), 1 / 400)
    assert offsets[100] == pytest.approx(1.0)


def test_poisson_offsets_keep_the_rate_on_average() -> None:
    offsets = arrival_offsets([(2000, 5.0)], poisson=True, seed=3)
    assert len(offsets) == pytest.approx(10_000, rel=0.05)
    assert np.all(np.diff(offsets) >= 0) and offsets.max() < 5.0
    assert np.std(np.diff(offsets)) == pytest.approx(1 / 2000, rel=0.1)  # exponential gaps: std = mean


@pytest.mark.parametrize(("phases", "message"), [
    ([(0, 1.0)], "must be finite and > 0"),
    ([(10, -1.0)], "must be finite and > 0"),
    ([(float("inf"), 1.0)], "must be finite and > 0"),
    ([(1000, 10.0)], "more than max_requests"),
])
def test_bad_schedules_are_refused(phases: list[tuple[float, float]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        arrival_offsets(phases, max_requests=5_000)


@pytest.mark.parametrize("host", ["10.0.0.1", "0.0.0.0", "example.com", "192.168.1.2"])
def test_pool_targets_loopback_only(host: str) -> None:
    with pytest.raises(ValueError, match="only targets loopback"):
        Pool(host, 80)


def test_every_scheduled_request_is_answered_on_kept_alive_connections() -> None:
    async def main() -> tuple[list[int], list[bytes], int, int]:
        async with Stub(ok) as stub:
            pool = Pool("127.0.0.1", stub.port)
            await pool.prepare(4)
            statuses, bodies = [], []

            async def job(i: int, at: float) -> None:
                reply = await pool.call(request_bytes("POST", f"/r{i}", b"x" * i), at)
                statuses.append(reply.status)
                bodies.append(reply.body)

            report = await drive(arrival_offsets([(500, 0.2)]), job)
            pool.close()
            return statuses, bodies, pool.opened, report.cancelled

    statuses, bodies, opened, cancelled = run(main())
    assert statuses == [200] * 100 and cancelled == 0
    assert sorted(bodies) == sorted(b'{"path":"/r%d","n":%d}' % (i, i) for i in range(100))
    assert opened < 20  # connections are reused, not opened per request


def test_latency_counts_from_the_scheduled_start_not_from_sending() -> None:
    """One connection, the first answer stalls 300 ms: requests scheduled meanwhile cannot be sent, and their
    latency must include that wait (a closed-loop client would report ~0 ms for them)."""
    stalled = asyncio.Event()

    async def first_stalls(method: str, path: str, body: bytes) -> Answer:
        if not stalled.is_set():
            stalled.set()
            await asyncio.sleep(0.3)
        return Answer()

    async def main() -> tuple[np.ndarray, np.ndarray]:
        async with Stub(first_stalls) as stub:
            pool = Pool("127.0.0.1", stub.port, max_connections=1)
            await pool.prepare(1)
            offsets = arrival_offsets([(100, 0.2)])
            latency = np.zeros(len(offsets))

            async def job(i: int, at: float) -> None:
                reply = await pool.call(GET, at)
                assert reply.status == 200
                latency[i] = reply.done - at

            await drive(offsets, job)
            pool.close()
            return offsets, latency

    offsets, latency = run(main())
    assert latency[0] >= 0.29
    assert np.all(latency >= 0.3 - offsets - 0.01)  # each waited for the stalled answer since its own schedule


def test_a_missing_answer_times_out_and_the_pool_recovers() -> None:
    async def never_first(method: str, path: str, body: bytes) -> Answer:
        if path == "/slow":
            await asyncio.sleep(10)
        return Answer()

    async def main() -> tuple[int, float, int]:
        async with Stub(never_first) as stub:
            pool = Pool("127.0.0.1", stub.port, timeout_s=0.2)
            start = time.perf_counter()
            slow = await pool.call(request_bytes("GET", "/slow"), start)
            fast = await pool.call(GET, time.perf_counter())
            pool.close()
            return slow.status, slow.done - start, fast.status

    status, waited, after = run(main())
    assert status == TIMEOUT and 0.19 <= waited < 0.5
    assert after == 200


def test_a_dropped_connection_is_a_connection_error_and_connection_close_is_honoured() -> None:
    async def handler(method: str, path: str, body: bytes) -> Answer:
        if path == "/drop":
            return Answer(close=True)
        if path == "/bye":
            return Answer(headers={"Connection": "close"})
        return Answer()

    async def main() -> tuple[list[int], int]:
        async with Stub(handler) as stub:
            pool = Pool("127.0.0.1", stub.port)
            await pool.prepare(1)
            out = []
            for path in ("/a", "/drop", "/b", "/bye", "/c"):
                out.append((await pool.call(request_bytes("GET", path), time.perf_counter())).status)
            pool.close()
            return out, pool.opened

    statuses, opened = run(main())
    assert statuses == [200, CONNECT_ERROR, 200, 200, 200]
    assert opened == 3  # the first, one after the drop, one after Connection: close


def test_no_free_connection_waits_and_counts_the_wait() -> None:
    async def slow(method: str, path: str, body: bytes) -> Answer:
        await asyncio.sleep(0.1)
        return Answer()

    async def main() -> list[float]:
        async with Stub(slow) as stub:
            pool = Pool("127.0.0.1", stub.port, max_connections=2)
            start = time.perf_counter()
            replies = await asyncio.gather(*(pool.call(GET, start) for _ in range(4)))
            pool.close()
            assert pool.opened == 2
            return sorted(r.done - start for r in replies)

    waits = run(main())
    assert waits[1] < 0.19 and waits[2] >= 0.2  # the third and fourth waited for a free connection


def test_the_run_is_bounded_in_time() -> None:
    async def main() -> tuple[int, float]:
        async def forever(i: int, at: float) -> None:
            await asyncio.sleep(60)

        started = time.perf_counter()
        report = await drive(arrival_offsets([(50, 0.1)]), forever, drain_s=0.2)
        return report.cancelled, time.perf_counter() - started

    cancelled, wall = run(main())
    assert cancelled == 5 and wall < 1.0


def test_latency_summary() -> None:
    assert latency_summary(np.zeros(0))["p99_ms"] is None
    summary = latency_summary(np.arange(1, 1001, dtype=float))
    assert summary["p50_ms"] == pytest.approx(500.5) and summary["max_ms"] == 1000.0
    assert summary["p99_ms"] == pytest.approx(990.01)


def test_recovery_is_the_first_window_from_which_every_window_is_good() -> None:
    at = np.arange(0, 20, 0.01)
    latency = np.where(at < 12.5, 500.0, 5.0)
    ok = np.ones_like(at, dtype=bool)
    assert recovery_s(at, latency, ok, after_s=10.0, until_s=20.0, threshold_ms=100.0) == pytest.approx(2.5)
    assert recovery_s(at, np.full_like(at, 5.0), ok, after_s=10.0, until_s=20.0, threshold_ms=100.0) == 0.0
    shed_late = ok & ~((at > 15) & (at < 15.05))  # a shed request after the latency came down delays recovery
    assert recovery_s(at, latency, shed_late, after_s=10.0, until_s=20.0, threshold_ms=100.0) == pytest.approx(5.1)
    assert recovery_s(at, np.full_like(at, 500.0), ok, after_s=10.0, until_s=20.0, threshold_ms=100.0) is None
