"""Micro-batching: requests queued behind a running batch share the next call; a bad request fails alone."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from rankstack.pipeline.api import RecommendRequest, RecommendResponse
from rankstack.serving.batcher import BatchFn, LoopBatcher, MicroBatcher, OverloadedError, _Job


def answer(requests: list[RecommendRequest]) -> list[RecommendResponse]:
    """One empty slate per request, echoing the user."""
    return [RecommendResponse(request_id=r.request_id or "", user_id=r.user_id, items=[]) for r in requests]


def test_requests_waiting_behind_a_batch_share_the_next_call() -> None:
    gate, sizes = threading.Event(), []

    def run(requests: list[RecommendRequest], waited_s: float) -> list[RecommendResponse]:
        assert waited_s >= 0
        sizes.append(len(requests))
        gate.wait(5)
        return answer(requests)

    batcher = MicroBatcher(run, max_batch=4)
    futures = [batcher.submit(RecommendRequest(user_id=f"u{i}")) for i in range(9)]
    gate.set()
    assert [f.result(5).user_id for f in futures] == [f"u{i}" for i in range(9)]
    assert sum(sizes) == 9 and max(sizes) <= 4 and len(sizes) < 9
    batcher.close()


def test_a_failing_request_fails_alone() -> None:
    def run(requests: list[RecommendRequest]) -> list[RecommendResponse]:
        if any(r.user_id == "bad" for r in requests):
            raise ValueError("bad user")
        return answer(requests)

    gate = threading.Event()
    batcher = MicroBatcher(lambda rs, _w: (gate.wait(5), run(rs))[1], max_batch=8)
    futures = [batcher.submit(RecommendRequest(user_id=u)) for u in ("a", "bad", "c")]
    gate.set()
    assert futures[0].result(5).user_id == "a" and futures[2].result(5).user_id == "c"
    with pytest.raises(ValueError, match="bad user"):
        futures[1].result(5)
    batcher.close()


def test_a_full_queue_sheds_load() -> None:
    gate = threading.Event()
    batcher = MicroBatcher(lambda rs, _w: (gate.wait(5), answer(rs))[1], max_batch=1, max_queue=2)
    first = batcher.submit(RecommendRequest(user_id="running"))
    while batcher._queue.qsize():  # wait until the worker has taken the first request
        pass
    queued = [batcher.submit(RecommendRequest(user_id=f"q{i}")) for i in range(2)]
    with pytest.raises(OverloadedError, match="retry"):
        batcher.submit(RecommendRequest(user_id="one too many"))
    gate.set()
    assert [f.result(5).user_id for f in [first, *queued]] == ["running", "q0", "q1"]
    batcher.close()


def _gather(batcher: LoopBatcher, users: list[str]) -> list[RecommendResponse | BaseException]:
    """Submit every user's request on one event loop at once and collect the outcomes."""
    async def main() -> list[RecommendResponse | BaseException]:
        return await asyncio.gather(*(batcher.answer(RecommendRequest(user_id=u)) for u in users),
                                    return_exceptions=True)
    return asyncio.run(main())


def test_the_loop_batcher_answers_requests_that_arrive_together_in_one_call() -> None:
    sizes: list[int] = []
    batcher = LoopBatcher(lambda rs, waited: (sizes.append(len(rs)), answer(rs))[1], max_batch=4)
    out = _gather(batcher, [f"u{i}" for i in range(10)])
    assert [r.user_id for r in out if isinstance(r, RecommendResponse)] == [f"u{i}" for i in range(10)]
    assert sizes == [4, 4, 2]


def test_the_loop_batcher_fails_a_bad_request_alone_and_sheds_past_its_queue() -> None:
    def run(requests: list[RecommendRequest], waited_s: float) -> list[RecommendResponse]:
        if any(r.user_id == "bad" for r in requests):
            raise ValueError("bad user")
        return answer(requests)

    out = _gather(LoopBatcher(run, max_batch=8, max_queue=3), ["a", "bad", "c", "one too many"])
    assert [type(r).__name__ for r in out] == ["RecommendResponse", "ValueError", "RecommendResponse",
                                                "OverloadedError"]


def test_the_loop_batcher_waits_to_fill_and_answers_leftovers_on_close() -> None:
    sizes: list[int] = []
    batcher = LoopBatcher(lambda rs, waited: (sizes.append(len(rs)), answer(rs))[1], max_wait_s=0.02)

    async def main() -> float:
        start = time.perf_counter()
        first = asyncio.ensure_future(batcher.answer(RecommendRequest(user_id="a")))
        await asyncio.sleep(0.005)  # arrives inside the first one's fill window
        await asyncio.gather(first, batcher.answer(RecommendRequest(user_id="b")))
        return time.perf_counter() - start

    assert asyncio.run(main()) >= 0.02 and sizes == [2]
    left: asyncio.Future[RecommendResponse] = asyncio.new_event_loop().create_future()
    batcher._pending.append(_Job(RecommendRequest(user_id="late"), left))
    batcher.close()
    assert left.result().user_id == "late" and sizes == [2, 1]


def _sleepy(seconds: float, seen: list[str] | None = None) -> BatchFn:
    """A batch function that takes ``seconds`` per batch (whatever its size) and notes the users it ran."""
    def run(requests: list[RecommendRequest], waited_s: float) -> list[RecommendResponse]:
        if seen is not None:
            seen.extend(r.user_id for r in requests)
        time.sleep(seconds)
        return answer(requests)
    return run


def _outcomes(out: list[RecommendResponse | BaseException]) -> list[str]:
    """``ok`` or the shed reason of each outcome."""
    return ["ok" if isinstance(r, RecommendResponse) else getattr(r, "reason", repr(r)) for r in out]


def test_the_loop_batcher_sheds_what_cannot_make_its_deadline_at_once() -> None:
    batcher = LoopBatcher(_sleepy(0.02), max_batch=2, deadline_s=0.05)
    for _ in range(3):
        batcher.admission.observe(2, 0.02)  # learned: 10 ms per request

    async def main() -> tuple[list[RecommendResponse | BaseException], list[float]]:
        times = [0.0] * 10

        async def one(i: int) -> RecommendResponse:
            t0 = time.perf_counter()
            try:
                return await batcher.answer(RecommendRequest(user_id=f"u{i}"))
            finally:
                times[i] = time.perf_counter() - t0
        out = await asyncio.gather(*(one(i) for i in range(10)), return_exceptions=True)
        return out, times

    out, times = asyncio.run(main())
    # ahead 0..4: 10, 20, 30, 40, 50 ms expected (the last exactly at the deadline); ahead 5: 60 ms
    outcomes = _outcomes(out)
    assert outcomes[5:] == ["deadline"] * 5 and "deadline" not in outcomes[:5]
    assert outcomes[:4] == ["ok"] * 4  # the fifth may expire on a slow box: its batch starts about 40 ms in
    assert all(isinstance(r, OverloadedError) and r.retry_after_s == 1 for r in out[5:])
    assert max(times[5:]) < 0.015  # refused before the first batch ran
    assert max(times[:5]) < 0.05 + 0.04  # the admitted ones finish near their deadline, not later


def test_a_request_that_can_no_longer_be_answered_in_time_never_runs() -> None:
    seen: list[str] = []
    batcher = LoopBatcher(_sleepy(0.03, seen), max_batch=2, deadline_s=0.05)  # nothing learned yet: all admitted
    out = _gather(batcher, [f"u{i}" for i in range(6)])
    # the first batch teaches 30 ms a batch: the second would start at 30 ms and end at 60, past the deadline
    assert _outcomes(out) == ["ok"] * 2 + ["expired"] * 4
    assert seen == ["u0", "u1"]
    assert batcher.admission.cost.seconds(2) == pytest.approx(0.03, rel=0.5)


def test_a_request_whose_deadline_passed_while_it_queued_never_runs() -> None:
    seen: list[str] = []
    batcher = LoopBatcher(_sleepy(0.03, seen), max_batch=2, deadline_s=0.05)
    batcher.admission.cost.observe(2, 0.0)  # believes batches are free: only the deadline itself stops a batch
    out = _gather(batcher, [f"u{i}" for i in range(6)])
    assert _outcomes(out)[:2] == ["ok", "ok"] and _outcomes(out)[4:] == ["expired"] * 2  # the third batch: 60 ms in
    assert seen[:2] == ["u0", "u1"] and "u4" not in seen and "u5" not in seen


def test_without_shedding_every_queued_request_runs() -> None:
    seen: list[str] = []
    batcher = LoopBatcher(_sleepy(0.03, seen), max_batch=2, deadline_s=0.05, shed=False)
    assert _outcomes(_gather(batcher, [f"u{i}" for i in range(6)])) == ["ok"] * 6


def test_the_thread_batcher_sheds_by_deadline_and_drops_expired_requests() -> None:
    seen: list[str] = []
    gate = threading.Event()

    def run(requests: list[RecommendRequest], waited_s: float) -> list[RecommendResponse]:
        gate.wait(5)
        return _sleepy(0.0, seen)(requests, waited_s)

    batcher = MicroBatcher(run, max_batch=1, deadline_s=0.05)
    first = batcher.submit(RecommendRequest(user_id="running"))
    while batcher._queue.qsize():
        pass
    late = batcher.submit(RecommendRequest(user_id="late"))
    time.sleep(0.06)  # its deadline passes while the first batch is held
    gate.set()
    assert first.result(5).user_id == "running"
    with pytest.raises(OverloadedError, match="past the 50 ms deadline") as caught:
        late.result(5)
    assert caught.value.reason == "expired" and seen == ["running"]
    gate.clear()
    for _ in range(3):
        batcher.admission.observe(1, 0.04)
    held = batcher.submit(RecommendRequest(user_id="held"))
    while batcher._running is None:
        pass
    with pytest.raises(OverloadedError) as refused:  # 40 ms left of the running batch + its own 40 ms
        batcher.submit(RecommendRequest(user_id="refused"))
    assert refused.value.reason == "deadline"
    gate.set()
    assert held.result(5).user_id == "held"
    batcher.close()


@pytest.mark.parametrize("loop_name", ["asyncio", "uvloop"])
def test_requests_read_during_a_batch_are_answered_before_the_next_batch(loop_name: str) -> None:
    """With batches on the loop's thread, a quick answer (a health check, a shed request) waits at most for the
    batch running when it arrived, not for the whole queue or the next batch."""
    batch_s = 0.05

    async def main() -> list[float]:
        batcher = LoopBatcher(_sleepy(batch_s), max_batch=1, deadline_s=None)

        async def health(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readline()
            writer.write(b"ok\n")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(health, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        queued = [asyncio.ensure_future(batcher.answer(RecommendRequest(user_id=f"u{i}"))) for i in range(14)]
        times: list[float] = []

        def probe() -> None:  # another thread: its bytes arrive while a batch blocks the loop
            import socket
            for _ in range(5):
                time.sleep(0.07)
                t0 = time.perf_counter()
                with socket.create_connection(("127.0.0.1", port)) as sock:
                    sock.sendall(b"ping\n")
                    sock.recv(16)
                times.append(time.perf_counter() - t0)

        thread = threading.Thread(target=probe)
        thread.start()
        await asyncio.gather(*queued)
        await asyncio.to_thread(thread.join)
        server.close()
        return times

    if loop_name == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        times = uvloop.run(main())
    else:
        times = asyncio.run(main())
    # before: two batches or more (the next batch ran first); now: what was left of the running one
    assert len(times) == 5 and sorted(times)[2] < batch_s * 1.2 and max(times) < batch_s * 4, times
