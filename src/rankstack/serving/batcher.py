"""Micro-batching: concurrent recommend requests are answered by one batched ``Recommender.recommend`` call.

The first waiting request and every request queued behind it (up to ``max_batch``, waiting at most
``max_wait_s`` for more) run as one batch: the pipeline is batch-first, so eight requests cost about twice
one. A batch that raises is re-run one request at a time, so one bad request fails alone. ``run_batch`` is
told how long the oldest request waited, so the pipeline's deadline can count from arrival. A queue longer
than ``max_queue`` sheds load (``OverloadedError``, answered as 503).

Two runners: ``LoopBatcher`` (the service's default) runs batches on the event loop's own thread — requests
that arrive while a batch runs wait in the socket buffers and form the next batch, and no second thread
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

from rankstack.errors import RankstackError
from rankstack.pipeline.api import RecommendRequest, RecommendResponse

log = logging.getLogger(__name__)
BatchFn = Callable[[list[RecommendRequest], float], list[RecommendResponse]]  # (requests, oldest wait in s)


class OverloadedError(RankstackError):
    """Too many requests are already waiting; the client should retry later."""


@dataclass
class _Job:
    """One queued request and the future its endpoint awaits (a thread's or the event loop's)."""

    request: RecommendRequest
    future: Future[RecommendResponse] | asyncio.Future[RecommendResponse]
    queued_at: float = field(default_factory=time.perf_counter)


class _Batching:
    """What both batchers are told: the batch function, batch and queue bounds, the fill wait, the observer."""

    def __init__(self, run_batch: BatchFn, *, max_batch: int = 32, max_wait_s: float = 0.0,
                 max_queue: int = 1_000, on_batch: Callable[[int, float], None] | None = None) -> None:
        self.run_batch = run_batch
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.max_queue = max_queue
        self.on_batch = on_batch


class MicroBatcher(_Batching):
    """Runs ``run_batch`` on batches of queued requests in one worker thread."""

    def __init__(self, run_batch: BatchFn, **bounds: Any) -> None:
        super().__init__(run_batch, **bounds)
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="rankstack-batcher", daemon=True)
        self._thread.start()

    def submit(self, request: RecommendRequest) -> Future[RecommendResponse]:
        """Queue one request; the future holds its response or the exception its batch raised."""
        if self._queue.qsize() >= self.max_queue:
            raise OverloadedError(f"{self.max_queue} requests are already waiting; retry shortly")
        future: Future[RecommendResponse] = Future()
        self._queue.put(_Job(request, future))
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
            if self.on_batch is not None:
                self.on_batch(len(jobs), time.perf_counter() - first.queued_at)
            self._run(jobs)
            if stop:
                return

    def _run(self, jobs: list[_Job]) -> None:
        """Answer every job of the batch."""
        answer_jobs(self.run_batch, jobs)

    async def answer(self, request: RecommendRequest) -> RecommendResponse:
        """Queue one request and wait for its response (``OverloadedError`` when the queue is full)."""
        return await asyncio.wrap_future(self.submit(request))


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

    async def answer(self, request: RecommendRequest) -> RecommendResponse:
        """Queue one request and wait for its response (``OverloadedError`` when the queue is full)."""
        if len(self._pending) >= self.max_queue:
            raise OverloadedError(f"{self.max_queue} requests are already waiting; retry shortly")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[RecommendResponse] = loop.create_future()
        self._pending.append(_Job(request, future))
        if self._scheduled is None:
            self._scheduled = (loop.call_later(self.max_wait_s, self._flush) if self.max_wait_s > 0
                               else loop.call_soon(self._flush))
        return await future

    def _flush(self) -> None:
        """Run one batch of the waiting requests; the rest go after the loop has served its other callbacks."""
        self._scheduled = None
        jobs, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch:]
        if self._pending:
            self._scheduled = asyncio.get_running_loop().call_soon(self._flush)
        if not jobs:
            return
        if self.on_batch is not None:
            self.on_batch(len(jobs), time.perf_counter() - jobs[0].queued_at)
        answer_jobs(self.run_batch, jobs)

    def close(self) -> None:
        """Answer whatever still waits (the loop is stopping)."""
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
        while self._pending:
            jobs, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch:]
            answer_jobs(self.run_batch, jobs)
