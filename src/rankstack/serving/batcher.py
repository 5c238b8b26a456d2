"""Micro-batching: concurrent recommend requests are answered by one batched ``Recommender.recommend`` call.

The first waiting request and every request queued behind it (up to ``max_batch``, waiting at most
``max_wait_s`` for more) run as one batch: the pipeline is batch-first, so eight requests cost about twice
one. A batch that raises is re-run one request at a time, so one bad request fails alone. ``run_batch`` is
told how long the oldest request waited, so the pipeline's deadline can count from arrival.

Load shedding (``rankstack.serving.admission``): a request that cannot be answered within ``deadline_s`` is
refused at once (``OverloadedError``, answered as 503), a queued request that can no longer be answered in time
when its batch comes up is dropped unrun, and a queue of ``max_queue`` refuses everything (with or without
``shed``).
Each batch's size and wall time teach the estimate the next decisions use.

Two runners: ``LoopBatcher`` (the service's default) runs batches on the event loop's own thread — requests
that arrive while a batch runs wait in the socket buffers; after each batch the loop reads them and admits,
sheds or answers (``/healthz``) every one of them before the next batch starts, so neither a shed answer nor
a health check waits behind more than the batch that was running when it arrived, and no second thread
competes for the GIL; ``MicroBatcher`` runs them on a worker thread, so the loop keeps accepting and parsing
requests (and answering /healthz) while a batch runs.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from rankstack.pipeline.api import RecommendRequest, RecommendResponse
from rankstack.serving.admission import Admission, OverloadedError

__all__ = ["BatchFn", "LoopBatcher", "MicroBatcher", "OverloadedError", "answer_jobs"]
log = logging.getLogger(__name__)
MIN_PASSES = 6  # loop passes between batches at least: asyncio's loop needs 5 from accepting a connection to the app
QUIET_PASS_S = 50e-6  # a loop pass this short ran nothing but the batcher's own callback
BatchFn = Callable[[list[RecommendRequest], float], list[RecommendResponse]]  # (requests, oldest wait in s)


@dataclass
class _Job:
    """One queued request, the future its endpoint awaits (a thread's or the event loop's), and when the server
    first saw it (its deadline counts from then)."""

    request: RecommendRequest
    future: Future[RecommendResponse] | asyncio.Future[RecommendResponse]
    queued_at: float = field(default_factory=time.perf_counter)


class _Batching:
    """What both batchers are told: the batch function, batch and queue bounds, the fill wait, the deadline and
    whether to shed by it, the observer; and how they time batches and drop expired requests."""

    def __init__(self, run_batch: BatchFn, *, max_batch: int = 32, max_wait_s: float = 0.0,
                 max_queue: int = 1_000, on_batch: Callable[[int, float], None] | None = None,
                 deadline_s: float | None = None, shed: bool = True) -> None:
        self.run_batch = run_batch
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.max_queue = max_queue
        self.on_batch = on_batch
        self.admission = Admission(max_batch=max_batch, max_queue=max_queue, deadline_s=deadline_s, shed=shed)
        self._backlog_since: float | None = None  # end of the last batch, when requests were still waiting

    def _live(self, job: _Job, now: float, batch_size: int) -> bool:
        """False (and the job settled) when its client is gone or it can no longer be answered in time by a batch
        of ``batch_size``."""
        if job.future.done():  # an asyncio future whose request was cancelled
            return False
        error = self.admission.expired(now - job.queued_at, batch_size)
        if error is None:
            return True
        job.future.set_exception(error)
        return False

    def _run(self, jobs: list[_Job], backlog: bool) -> float:
        """Answer one batch, timing it (and the gap since the last one) for the admission estimate; ``backlog``:
        requests are still waiting behind it. When the batch started."""
        started = time.perf_counter()
        if self._backlog_since is not None:
            self.admission.observe_gap(started - self._backlog_since)
        if self.on_batch is not None:
            self.on_batch(len(jobs), started - jobs[0].queued_at)
        answer_jobs(self.run_batch, jobs)
        ended = time.perf_counter()
        self.admission.observe(len(jobs), ended - started)
        self._backlog_since = ended if backlog else None
        return started


class MicroBatcher(_Batching):
    """Runs ``run_batch`` on batches of queued requests in one worker thread."""

    def __init__(self, run_batch: BatchFn, **bounds: Any) -> None:
        super().__init__(run_batch, **bounds)
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._running: tuple[float, int] | None = None  # (start, size) of the batch running now
        self._thread = threading.Thread(target=self._loop, name="rankstack-batcher", daemon=True)
        self._thread.start()

    def submit(self, request: RecommendRequest, arrived_at: float | None = None) -> Future[RecommendResponse]:
        """Queue one request (``OverloadedError`` when it must be shed); the future holds its response or the
        exception its batch raised."""
        now = time.perf_counter()
        arrived = now if arrived_at is None else min(arrived_at, now)
        running, left = self._running, 0.0
        if running is not None:
            left = max(self.admission.cost.seconds(running[1]) - (now - running[0]), 0.0)
        self.admission.admit(self._queue.qsize(), now - arrived, left)
        future: Future[RecommendResponse] = Future()
        self._queue.put(_Job(request, future, arrived))
        return future

    def close(self) -> None:
        """Finish the queued requests, then stop the worker."""
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        """Collect a batch behind the first waiting request, run it, repeat until ``close``."""
        while True:
            first = self._queue.get()
            if first is None:
                return
            jobs, stop = [first], False
            until = time.perf_counter() + self.max_wait_s
            while len(jobs) < self.max_batch:
                try:
                    left = until - time.perf_counter()
                    job = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stop = True
                    break
                jobs.append(job)
            now = time.perf_counter()
            jobs = [job for job in jobs if self._live(job, now, len(jobs))]
            if jobs:
                self._running = (now, len(jobs))
                self._run(jobs, backlog=self._queue.qsize() > 0)
                self._running = None
            if stop:
                return

    async def answer(self, request: RecommendRequest, arrived_at: float | None = None) -> RecommendResponse:
        """Queue one request and wait for its response (``OverloadedError`` when it is shed)."""
        return await asyncio.wrap_future(self.submit(request, arrived_at))


def answer_jobs(run_batch: BatchFn, jobs: list[_Job]) -> None:
    """Run one batch and settle each job's future; a failing batch is split so that only the bad request fails."""
    try:
        responses = run_batch([job.request for job in jobs], time.perf_counter() - jobs[0].queued_at)
    except BaseException as exc:
        if len(jobs) == 1:
            if not jobs[0].future.done():
                jobs[0].future.set_exception(exc)
            return
        log.info("a batch of %d failed (%s); answering its requests one by one", len(jobs), exc)
        for job in jobs:
            answer_jobs(run_batch, [job])
        return
    for job, response in zip(jobs, responses, strict=True):
        if not job.future.done():  # an asyncio future whose request was cancelled (client gone)
            job.future.set_result(response)


class LoopBatcher(_Batching):
    """Runs ``run_batch`` on batches of waiting requests in the event loop's own thread."""

    def __init__(self, run_batch: BatchFn, **bounds: Any) -> None:
        super().__init__(run_batch, **bounds)
        self._pending: list[_Job] = []
        self._scheduled: asyncio.TimerHandle | asyncio.Handle | None = None
        self._blocked_since: float | None = None  # start of the last batch, until what arrived during it was read

    async def answer(self, request: RecommendRequest, arrived_at: float | None = None) -> RecommendResponse:
        """Queue one request and wait for its response (``OverloadedError`` when it is shed)."""
        now = time.perf_counter()
        arrived = now if arrived_at is None else min(arrived_at, now)
        if self._blocked_since is not None:  # it may have waited in a socket buffer since that batch started
            arrived = min(arrived, self._blocked_since)
        self.admission.admit(len(self._pending), now - arrived)  # no batch runs while this coroutine does
        loop = asyncio.get_running_loop()
        future: asyncio.Future[RecommendResponse] = loop.create_future()
        self._pending.append(_Job(request, future, arrived))
        if self._scheduled is None:
            self._scheduled = (loop.call_later(self.max_wait_s, self._flush) if self.max_wait_s > 0
                               else loop.call_soon(self._flush))
        return await future

    def _flush(self) -> None:
        """Run one batch of the waiting requests; the next one waits until the loop has read, admitted or shed
        (and answered health checks for) whatever arrived while this one ran, and those requests' deadlines count
        from the start of this batch (the client sent them no earlier)."""
        self._scheduled = None
        now, taken = time.perf_counter(), 0
        jobs: list[_Job] = []
        size = min(len(self._pending), self.max_batch)
        for job in self._pending:
            if len(jobs) == self.max_batch:
                break
            taken += 1
            if self._live(job, now, size):
                jobs.append(job)
        del self._pending[:taken]
        loop = asyncio.get_running_loop()
        if jobs:
            self._blocked_since = started = self._run(jobs, backlog=bool(self._pending))
            ended = time.perf_counter()
            self._scheduled = loop.call_soon(self._after_io, 1, ended, ended + (ended - started))
        elif self._pending:
            self._scheduled = loop.call_soon(self._flush)

    def _after_io(self, passes: int, previous: float, until: float) -> None:
        """Run the next batch (if requests wait) once the loop has had a quiet pass, at least ``MIN_PASSES`` after
        the last batch, or at ``until`` (as long again as the last batch took) if it never has one: what arrived
        during the batch is read, admitted or shed, and answered (health checks, slates of the last batch) first.
        A request on an open connection needs two passes to reach the app (read, then its task), one on a new
        connection five with asyncio's loop (accept, transport, protocol, read, task); FastAPI's routes take a few
        more. A pass with nothing else to do costs microseconds."""
        loop = asyncio.get_running_loop()
        now = time.perf_counter()
        if passes < MIN_PASSES or (now - previous > QUIET_PASS_S and now < until):
            self._scheduled = loop.call_soon(self._after_io, passes + 1, now, until)
            return
        self._blocked_since = None
        self._scheduled = loop.call_soon(self._flush) if self._pending else None

    def close(self) -> None:
        """Answer whatever still waits (the loop is stopping)."""
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
        while self._pending:
            jobs, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch:]
            answer_jobs(self.run_batch, jobs)
