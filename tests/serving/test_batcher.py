"""Micro-batching: requests queued behind a running batch share the next call; a bad request fails alone."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rankstack.pipeline.api import RecommendRequest, RecommendResponse
from rankstack.serving.batcher import (
    FILL_FROM_BUSY,
    BatchFn,
    BusyShare,
    LoopBatcher,
    MicroBatcher,
    OverloadedError,
    _Job,
)


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
    batcher = LoopBatcher(lambda rs, waited: (sizes.append(len(rs)), answer(rs))[1], max_wait_s=0.02,
                          fill_by_load=False)

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


def test_an_idle_loop_batcher_answers_at_once_and_a_busy_one_waits_to_fill() -> None:
    sizes: list[int] = []
    batcher = LoopBatcher(lambda rs, waited: (sizes.append(len(rs)), answer(rs))[1], max_wait_s=0.05)

    async def pair() -> float:
        start = time.perf_counter()
        first = asyncio.ensure_future(batcher.answer(RecommendRequest(user_id="a")))
        await asyncio.sleep(0.01)
        await asyncio.gather(first, batcher.answer(RecommendRequest(user_id="b")))
        return time.perf_counter() - start

    assert batcher.fill_wait_s(time.perf_counter()) == 0.0
    assert asyncio.run(pair()) < 0.05 and sizes == [1, 1]  # idle: no fill wait, each request its own batch
    now = time.perf_counter()
    batcher.busy.add(now - 2.0, now)  # as if it had run batches back to back for the last two seconds
    assert batcher.fill_wait_s(now) == pytest.approx(0.05)
    assert asyncio.run(pair()) >= 0.04 and sizes == [1, 1, 2]  # busy: the second joins the first's batch


def test_the_thread_batcher_scales_its_fill_wait_too() -> None:
    sizes: list[int] = []
    batcher = MicroBatcher(lambda rs, _w: (sizes.append(len(rs)), answer(rs))[1], max_wait_s=0.05)
    now = time.perf_counter()
    batcher.busy.add(now - 2.0, now)
    first = batcher.submit(RecommendRequest(user_id="a"))
    time.sleep(0.01)
    second = batcher.submit(RecommendRequest(user_id="b"))
    assert first.result(5).user_id == "a" and second.result(5).user_id == "b" and sizes == [2]
    batcher.close()


@pytest.mark.parametrize(("busy", "wait_share"), [(0.1, 0.0), (FILL_FROM_BUSY, 0.0), (0.5, 1 / 3), (0.85, 0.8),
                                                  (1.0, 1.0)])
def test_the_fill_wait_ramps_from_nothing_under_light_load_to_the_cap_at_saturation(busy: float,
                                                                                      wait_share: float) -> None:
    batcher = LoopBatcher(lambda rs, _w: answer(rs), max_wait_s=0.003)
    t, period = 0.0, 0.002
    for _ in range(5_000):
        batcher.busy.add(t, t + busy * period)
        t += period
    assert batcher.fill_wait_s(t) == pytest.approx(0.003 * wait_share, abs=0.003 * 0.02)
    assert LoopBatcher(lambda rs, _w: answer(rs), max_wait_s=0.0).fill_wait_s(t) == 0.0


@pytest.mark.parametrize(("busy", "expected"), [(0.0, 0.0), (0.25, 0.25), (0.5, 0.5), (0.9, 0.9)])
def test_the_busy_share_of_steady_batches_is_their_duty_cycle(busy: float, expected: float) -> None:
    share, t, period = BusyShare(0.5), 0.0, 0.002
    for _ in range(5_000):
        share.add(t, t + busy * period)
        t += period
    assert share.share(t) == pytest.approx(expected, abs=0.01)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 0.05), st.floats(0, 0.05)), max_size=200), st.floats(0, 5))
def test_the_busy_share_stays_in_unit_range_and_decays_when_idle(gaps: list[tuple[float, float]],
                                                                  idle_s: float) -> None:
    share, t = BusyShare(0.5), 0.0
    for gap, run in gaps:
        t += gap
        share.add(t, t + run)
        t += run
        assert 0.0 <= share.share(t) <= 1.0
    assert share.share(t + idle_s) <= share.share(t) + 1e-12
    assert share.share(t + 20.0) < 1e-9


@pytest.mark.parametrize("window_s", [0.0, -1.0])
def test_bad_busy_windows_are_refused(window_s: float) -> None:
    with pytest.raises(ValueError, match="window_s must be > 0"):
        BusyShare(window_s)


@pytest.mark.parametrize("batcher", [LoopBatcher, MicroBatcher])
def test_a_negative_fill_wait_is_refused(batcher: type[LoopBatcher] | type[MicroBatcher]) -> None:
    with pytest.raises(ValueError, match="max_wait_s must be >= 0"):
        batcher(lambda rs, _w: answer(rs), max_wait_s=-0.001)


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


def _probe_at(delay_s: float, coro_fn: Any) -> asyncio.Task[Any]:
    """A task that waits ``delay_s`` then awaits ``coro_fn()``, timing it: (outcome, seconds)."""
    async def run() -> tuple[RecommendResponse | BaseException, float]:
        await asyncio.sleep(delay_s)
        t0 = time.perf_counter()
        try:
            outcome: RecommendResponse | BaseException = await coro_fn()
        except Exception as exc:
            outcome = exc
        return outcome, time.perf_counter() - t0
    return asyncio.ensure_future(run())


def test_a_long_batch_runs_off_the_loop_and_a_hopeless_request_is_refused_while_it_runs() -> None:
    """The gap the loop batcher had: a refusal waited out the batch running on the loop's thread. Now a batch
    expected past ``inline_max_s`` runs on the worker thread and the loop refuses at once."""
    batch_s, threads, seen = 0.5, list[bool](), list[str]()

    def run(requests: list[RecommendRequest], waited_s: float) -> list[RecommendResponse]:
        threads.append(threading.current_thread() is threading.main_thread())
        return _sleepy(batch_s, seen)(requests, waited_s)

    batcher = LoopBatcher(run, max_batch=4, deadline_s=0.3, inline_max_s=0.01)
    batcher.admission.observe(1, batch_s)  # learned: half a second per batch of one

    async def main() -> tuple[Any, ...]:
        held = asyncio.ensure_future(batcher.answer(RecommendRequest(user_id="held")))  # idle: always admitted
        refused = _probe_at(0.1, lambda: batcher.answer(RecommendRequest(user_id="hopeless")))
        ticks = _probe_at(0.15, lambda: asyncio.sleep(0))  # the loop itself is free while the batch runs
        t0 = time.perf_counter()
        answered = await held
        return answered, time.perf_counter() - t0, await refused, await ticks

    answered, held_s, (refusal, refusal_s), (_, tick_s) = asyncio.run(main())
    assert isinstance(answered, RecommendResponse) and answered.user_id == "held" and held_s >= batch_s * 0.9
    assert isinstance(refusal, OverloadedError) and refusal.reason == "deadline"
    assert refusal.expected_s is not None and refusal.expected_s > 0.3  # what is left of the batch + its own
    assert refusal_s < batch_s / 5 and tick_s < batch_s / 5, (refusal_s, tick_s)  # not the ~400 ms left of it
    assert threads == [False] and seen == ["held"]  # ran on the worker thread; the refused request never ran
    assert batcher.admission.cost.seconds(1) == pytest.approx(batch_s, rel=0.3)  # its time was learned


@pytest.mark.parametrize(("inline_max_s", "on_loop"), [(1.0, True), (0.01, False)])
def test_a_batch_runs_on_the_loops_thread_only_when_expected_short(inline_max_s: float, on_loop: bool) -> None:
    threads: list[bool] = []

    def run(requests: list[RecommendRequest], waited_s: float) -> list[RecommendResponse]:
        threads.append(threading.current_thread() is threading.main_thread())
        return answer(requests)

    batcher = LoopBatcher(run, max_batch=2, inline_max_s=inline_max_s)
    batcher.admission.observe(2, 0.05)  # expected: 50 ms a batch
    out = _gather(batcher, ["a", "b", "c"])
    assert [r.user_id for r in out if isinstance(r, RecommendResponse)] == ["a", "b", "c"]
    assert threads == [on_loop, on_loop]


def test_off_the_loop_a_bad_request_fails_alone_and_requests_queued_meanwhile_run_next() -> None:
    sizes: list[int] = []

    def run(requests: list[RecommendRequest], waited_s: float) -> list[RecommendResponse]:
        sizes.append(len(requests))
        time.sleep(0.05)
        if any(r.user_id == "bad" for r in requests):
            raise ValueError("bad user")
        return answer(requests)

    batcher = LoopBatcher(run, max_batch=2, inline_max_s=0.0)
    batcher.admission.observe(2, 0.05)

    async def main() -> list[Any]:
        first = [asyncio.ensure_future(batcher.answer(RecommendRequest(user_id=u))) for u in ("a", "bad")]
        await asyncio.sleep(0.02)  # the first batch is running on the worker thread
        later = [asyncio.ensure_future(batcher.answer(RecommendRequest(user_id=u))) for u in ("c", "d")]
        return await asyncio.gather(*first, *later, return_exceptions=True)

    out = asyncio.run(main())
    assert [type(r).__name__ for r in out] == ["RecommendResponse", "ValueError", "RecommendResponse",
                                                "RecommendResponse"]
    assert sizes == [2, 1, 1, 2]  # the failed pair re-run one by one, then the two queued meanwhile together


def test_close_answers_the_batch_running_off_the_loop() -> None:
    gate = threading.Event()
    batcher = LoopBatcher(lambda rs, _w: (gate.wait(5), answer(rs))[1], inline_max_s=0.0)
    batcher.admission.observe(1, 0.05)
    loop = asyncio.new_event_loop()
    try:
        held = loop.create_task(batcher.answer(RecommendRequest(user_id="held")))
        loop.run_until_complete(asyncio.sleep(0.02))  # the batch starts on the worker thread and waits at the gate
        assert batcher._off is not None
        threading.Timer(0.05, gate.set).start()
        batcher.close()  # waits for the batch and answers it
        assert loop.run_until_complete(held).user_id == "held"
    finally:
        loop.close()


@pytest.mark.parametrize("bad", [-0.001, -1.0])
def test_a_negative_inline_limit_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="inline_max_s must be >= 0"):
        LoopBatcher(lambda rs, _w: answer(rs), inline_max_s=bad)


@pytest.mark.parametrize("inline_max_s", [1.0, 0.0])
def test_a_batch_function_that_answers_the_wrong_number_of_requests_fails_them_not_the_batcher(
        inline_max_s: float) -> None:
    batcher = LoopBatcher(lambda rs, _w: answer(rs)[1:], max_batch=2, inline_max_s=inline_max_s)
    batcher.admission.observe(2, 0.05)
    out = _gather(batcher, ["a", "b", "c"])
    assert all(isinstance(r, RuntimeError) and "with 0 responses" in str(r) for r in out), out


@pytest.mark.parametrize("kind", ["loop", "thread"])
def test_answers_teach_the_admission_margin(kind: str) -> None:
    """Each answered request reports how much later than expected it came; a batch function whose cost the fit
    underestimates (every third batch 20 ms slower) gives a margin of about those 20 ms."""
    calls = [0]

    def run(requests: list[RecommendRequest], waited_s: float) -> list[RecommendResponse]:
        calls[0] += 1
        time.sleep(0.022 if calls[0] % 3 == 0 else 0.002)
        return answer(requests)

    batcher = LoopBatcher(run, max_batch=1, deadline_s=1.0) if kind == "loop" else MicroBatcher(
        run, max_batch=1, deadline_s=1.0)

    async def main() -> None:
        for i in range(96):  # one at a time: the expected time is one batch
            await batcher.answer(RecommendRequest(user_id=f"u{i}"))

    asyncio.run(main())
    batcher.close()
    assert 0.008 < batcher.admission.margin.value_s < 0.2
