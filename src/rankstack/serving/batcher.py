"""Micro-batching: concurrent recommend requests are answered by one batched ``Recommender.recommend`` call.

The first waiting request and every request queued behind it (up to ``max_batch``) run as one batch: the
pipeline is batch-first, so eight requests cost about twice one. A request that finds the batcher idle waits
``max_wait_s · clip((ρ − ρ₀) / (1 − ρ₀), 0, 1)`` for others to join, where ρ is the share of the last
``BUSY_WINDOW_S`` spent running batches (an exponentially weighted mean) and ρ₀ = ``FILL_FROM_BUSY``: a lightly
loaded service answers at once, a busy one fills its batches and spends less CPU per request just when it has
least to spare (``fill_by_load=False``: always ``max_wait_s``). A batch that raises is re-run one request at
a time, so one bad request fails alone. ``run_batch`` is told how long the oldest request waited, so the
pipeline's deadline can count from arrival.

Load shedding (``rankstack.serving.admission``): a request that cannot be answered within ``deadline_s`` is
refused at once (``OverloadedError``, answered as 503), a queued request that can no longer be answered in time
when its batch comes up is dropped unrun, and a queue of ``max_queue`` refuses everything (with or without
``shed``).
Each batch's size and wall time teach the estimate the next decisions use.

Two runners: ``LoopBatcher`` (the service's default) schedules batches from the event loop — one at a time, the
next only after the loop has read, admitted or shed, and answered (``/healthz``) whatever arrived during the last.
A batch expected to be short (at most ``inline_max_s``, by the fitted cost) runs on the loop's own thread, so no
second thread competes for the GIL; meanwhile requests wait in the socket buffers, so a refusal or a health check
waits out at most that short batch. A longer batch runs on the batcher's worker thread while the loop keeps reading
requests, refusing at once those that cannot make their deadline (counting what is left of the running batch)
and answering ``/healthz`` (the pipeline holds the GIL at most a switch interval at a time). ``MicroBatcher`` runs
every batch on a worker thread that takes the next one as soon as the last ends.
"""

from __future__ import annotations

import asyncio
import logging
import math
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from rankstack.pipeline.api import RecommendRequest, RecommendResponse
from rankstack.serving.admission import Admission, OverloadedError

__all__ = ["BatchFn", "BusyShare", "LoopBatcher", "MicroBatcher", "Outcome", "OverloadedError", "answer_jobs",
           "batch_outcomes", "settle"]
log = logging.getLogger(__name__)
MIN_PASSES = 6  # loop passes between batches at least: asyncio's loop needs 5 from accepting a connection to the app
QUIET_PASS_S = 50e-6  # a loop pass this short ran nothing but the batcher's own callback
INLINE_MAX_S = 0.05  # the loop batcher runs a batch expected to take longer than this on its worker thread
CLOSE_WAIT_S = 30.0  # on close, how long the loop batcher waits for the batch on its worker thread
BUSY_WINDOW_S = 0.5  # time constant of the busy share that scales the fill wait
FILL_FROM_BUSY = 0.25  # below this busy share a request never waits for a batch to fill
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
                 deadline_s: float | None = None, shed: bool = True, fill_by_load: bool = True) -> None:
        if max_wait_s < 0:
            raise ValueError(f"max_wait_s must be >= 0 seconds, got {max_wait_s}")
        self.run_batch = run_batch
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.fill_by_load = fill_by_load
        self.busy = BusyShare(BUSY_WINDOW_S)
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

    def _begin(self, jobs: list[_Job]) -> float:
        """Note a batch starting now (the gap since the last one, the observer); when it started."""
        started = time.perf_counter()
        if self._backlog_since is not None:
            self.admission.observe_gap(started - self._backlog_since)
        if self.on_batch is not None:
            self.on_batch(len(jobs), started - jobs[0].queued_at)
        return started

    def _end(self, size: int, started: float, ended: float, backlog: bool) -> None:
        """Teach the estimate a batch of ``size`` that ran from ``started`` to ``ended``; ``backlog``: requests were
        still waiting when it ended."""
        self.admission.observe(size, ended - started)
        self.busy.add(started, ended)
        self._backlog_since = ended if backlog else None

    def fill_wait_s(self, now: float) -> float:
        """How long a request that finds the batcher idle waits for others: ``max_wait_s · clip((ρ − ρ₀) / (1 − ρ₀),
        0, 1)`` (ρ the busy share now, ρ₀ = ``FILL_FROM_BUSY``), or ``max_wait_s`` without ``fill_by_load``."""
        if self.max_wait_s <= 0 or not self.fill_by_load:
            return self.max_wait_s
        ramp = (self.busy.share(now) - FILL_FROM_BUSY) / (1.0 - FILL_FROM_BUSY)
        return self.max_wait_s * min(max(ramp, 0.0), 1.0)

    def _run(self, jobs: list[_Job], backlog: bool) -> float:
        """Answer one batch on this thread, timing it (and the gap since the last one) for the admission estimate;
        ``backlog``: requests are still waiting behind it. When the batch started."""
        started = self._begin(jobs)
        answer_jobs(self.run_batch, jobs)
        self._end(len(jobs), started, time.perf_counter(), backlog)
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
        expected = self.admission.admit(self._queue.qsize(), now - arrived, left)
        future: Future[RecommendResponse] = Future()
        future.add_done_callback(lambda f: self._answered(f, expected, now))
        self._queue.put(_Job(request, future, arrived))
        return future

    def _answered(self, future: Future[RecommendResponse], expected_s: float, admitted: float) -> None:
        """Teach the admission margin how long an answered request took from admission (failed ones teach nothing)."""
        if not future.cancelled() and future.exception() is None:
            self.admission.answered(expected_s, time.perf_counter() - admitted)

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
            now = time.perf_counter()
            until = now + self.fill_wait_s(now)
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


class BusyShare:
    """ρ(t): the share of recent time spent running batches, weighted ``exp(−age / window_s)``.

    ρ(t) = (1 / window_s) · ∫ busy(s) · exp(−(t − s) / window_s) ds over s ≤ t, busy(s) = 1 while a batch runs;
    a batch is counted whole at its end (so ρ ∈ [0, 1] up to that rounding, and clipped to it).
    """

    def __init__(self, window_s: float) -> None:
        if window_s <= 0:
            raise ValueError(f"window_s must be > 0 seconds, got {window_s}")
        self.window_s = window_s
        self._mass = 0.0  # ∫ busy · weight, as of ``_at``
        self._at = 0.0

    def add(self, started: float, ended: float) -> None:
        """A batch ran from ``started`` to ``ended``."""
        if ended < started:
            return
        self._mass = self._mass * math.exp(-max(ended - self._at, 0.0) / self.window_s) + (ended - started)
        self._at = max(ended, self._at)

    def share(self, now: float) -> float:
        """ρ at ``now``, in [0, 1]."""
        decayed = self._mass * math.exp(-max(now - self._at, 0.0) / self.window_s)
        return min(decayed / self.window_s, 1.0)


Outcome = RecommendResponse | BaseException  # one request's response, or what its batch (or it alone) raised


def batch_outcomes(run_batch: BatchFn, requests: list[RecommendRequest], queued_at: list[float]) -> list[Outcome]:
    """Run one batch (``queued_at``: each request's arrival); a failing batch is re-run request by request so that
    only the bad request fails. Touches no future, so it may run on any thread."""
    try:
        responses: list[Outcome] = list(run_batch(requests, time.perf_counter() - queued_at[0]))
        if len(responses) != len(requests):
            raise RuntimeError(f"the batch function answered {len(requests)} requests with {len(responses)} responses")
        return responses
    except BaseException as exc:
        if len(requests) == 1:
            return [exc]
        log.info("a batch of %d failed (%s); answering its requests one by one", len(requests), exc)
        return [batch_outcomes(run_batch, [request], [at])[0]
                for request, at in zip(requests, queued_at, strict=True)]


def settle(jobs: list[_Job], outcomes: list[Outcome]) -> None:
    """Set each job's future to its outcome (on the thread that owns the futures); a future already done (an
    asyncio future whose request was cancelled: client gone) is left alone."""
    for job, outcome in zip(jobs, outcomes, strict=True):
        if job.future.done():
            continue
        if isinstance(outcome, BaseException):
            job.future.set_exception(outcome)
        else:
            job.future.set_result(outcome)


def answer_jobs(run_batch: BatchFn, jobs: list[_Job]) -> None:
    """Run one batch and settle each job's future; a failing batch is split so that only the bad request fails."""
    settle(jobs, batch_outcomes(run_batch, [job.request for job in jobs], [job.queued_at for job in jobs]))


class LoopBatcher(_Batching):
    """Schedules batches of waiting requests from the event loop; runs a short one on the loop's own thread and a
    long one (expected over ``inline_max_s``) on a worker thread while the loop keeps admitting and shedding."""

    def __init__(self, run_batch: BatchFn, *, inline_max_s: float = INLINE_MAX_S, **bounds: Any) -> None:
        super().__init__(run_batch, **bounds)
        if inline_max_s < 0:
            raise ValueError(f"inline_max_s must be >= 0 seconds, got {inline_max_s}")
        self.inline_max_s = inline_max_s
        self._pending: list[_Job] = []
        self._scheduled: asyncio.TimerHandle | asyncio.Handle | None = None
        self._blocked_since: float | None = None  # start of the last batch, until what arrived during it was read
        self._worker: ThreadPoolExecutor | None = None  # one thread, made when the first long batch comes
        self._off: _OffLoop | None = None  # the batch running on the worker thread now

    async def answer(self, request: RecommendRequest, arrived_at: float | None = None) -> RecommendResponse:
        """Queue one request and wait for its response (``OverloadedError`` when it is shed)."""
        now = time.perf_counter()
        arrived = now if arrived_at is None else min(arrived_at, now)
        if self._blocked_since is not None:  # it may have waited in a socket buffer since that batch started
            arrived = min(arrived, self._blocked_since)
        left = 0.0  # no batch runs on this thread while this coroutine does; one may run on the worker thread
        if self._off is not None:
            left = max(self.admission.cost.seconds(len(self._off.jobs)) - (now - self._off.started), 0.0)
        expected = self.admission.admit(len(self._pending), now - arrived, left)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[RecommendResponse] = loop.create_future()
        self._pending.append(_Job(request, future, arrived))
        if self._scheduled is None and self._off is None:  # else the running batch's end schedules the next
            wait = self.fill_wait_s(now)
            self._scheduled = loop.call_later(wait, self._flush) if wait > 0 else loop.call_soon(self._flush)
        response = await future
        self.admission.answered(expected, time.perf_counter() - now)
        return response

    def _take(self) -> list[_Job]:
        """The next batch's live jobs off the front of the queue (the others settled as expired or gone)."""
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
        return jobs

    def _flush(self) -> None:
        """Run one batch of the waiting requests — here if it is expected to be short, else on the worker thread; the
        next one waits until the loop has read, admitted or shed (and answered health checks for) whatever arrived
        meanwhile. Requests read right after a batch on this thread count their deadlines from its start (the
        client sent them no earlier)."""
        self._scheduled = None
        jobs = self._take()
        loop = asyncio.get_running_loop()
        if not jobs:
            if self._pending:
                self._scheduled = loop.call_soon(self._flush)
            return
        if self.admission.cost.seconds(len(jobs)) > self.inline_max_s:
            self._offload(jobs, loop)
            return
        self._blocked_since = started = self._run(jobs, backlog=bool(self._pending))
        ended = time.perf_counter()
        self._scheduled = loop.call_soon(self._after_io, 1, ended, ended + (ended - started))

    def _offload(self, jobs: list[_Job], loop: asyncio.AbstractEventLoop) -> None:
        """Start ``jobs`` on the worker thread; its end comes back to the loop (``_landed``)."""
        if self._worker is None:
            self._worker = ThreadPoolExecutor(1, thread_name_prefix="rankstack-batch")
        started = self._begin(jobs)
        requests, arrivals = [job.request for job in jobs], [job.queued_at for job in jobs]
        done = self._worker.submit(_timed_outcomes, self.run_batch, requests, arrivals)
        off = self._off = _OffLoop(jobs, started, done)
        done.add_done_callback(lambda _: loop.call_soon_threadsafe(self._landed, off))

    def _landed(self, off: _OffLoop) -> None:
        """A batch on the worker thread ended: learn its time, answer its requests, then (as after a batch on this
        thread) start the next once the loop has had a quiet pass, so the loop's own work does not compete with it
        for the GIL (starting it at once measured worse: docs/benchmarks.md, "#20: refusals without waiting out
        the batch")."""
        if self._off is not off:  # close() answered it already
            return
        self._off = None
        outcomes, ended = _result(off)
        self._end(len(off.jobs), off.started, ended, backlog=bool(self._pending))
        settle(off.jobs, outcomes)
        now = time.perf_counter()
        self._scheduled = asyncio.get_running_loop().call_soon(self._after_io, 1, now, now + (ended - off.started))

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
        """Answer whatever still waits (the loop is stopping): the batch on the worker thread, then the queue."""
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
        off, self._off = self._off, None
        if off is not None:
            settle(off.jobs, _result(off, timeout_s=CLOSE_WAIT_S)[0])
        while self._pending:
            jobs, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch:]
            answer_jobs(self.run_batch, jobs)
        if self._worker is not None:
            self._worker.shutdown(wait=False)


@dataclass
class _OffLoop:
    """A batch running on the loop batcher's worker thread: its jobs, when it started, its outcomes to come."""

    jobs: list[_Job]
    started: float
    done: Future[tuple[list[Outcome], float]]


def _timed_outcomes(run_batch: BatchFn, requests: list[RecommendRequest], queued_at: list[float]
                    ) -> tuple[list[Outcome], float]:
    """``batch_outcomes`` and when it ended (``perf_counter``), on the worker thread."""
    outcomes = batch_outcomes(run_batch, requests, queued_at)
    return outcomes, time.perf_counter()


def _result(off: _OffLoop, timeout_s: float | None = None) -> tuple[list[Outcome], float]:
    """The outcomes of a batch run on the worker thread and when it ended (every request failing with what broke
    the thread, or with a timeout)."""
    try:
        return off.done.result(timeout=timeout_s)
    except BaseException as exc:
        return [exc] * len(off.jobs), time.perf_counter()
