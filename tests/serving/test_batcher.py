"""Micro-batching: requests queued behind a running batch share the next call; a bad request fails alone."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from rankstack.pipeline.api import RecommendRequest, RecommendResponse
from rankstack.serving.batcher import LoopBatcher, MicroBatcher, OverloadedError, _Job


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
