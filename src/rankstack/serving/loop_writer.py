"""One writer thread for an event loop: coroutines hand it work and await the result; work queued while a write
runs goes into the next write, together.

An event post used to reach the state store through Starlette's ``run_in_threadpool``: 209-270 us of CPU per
post for the thread hop alone on the 2-core box, and each waiting post held a thread of its own. Here a post
costs a lock, a wake-up of the one writer thread and one ``call_soon_threadsafe`` per write, shared by every post
in it: 108-146 us alone, 24-25 us per post with ten queued (``benchmarks/serving_overheads.py``;
``docs/benchmarks.md``, "Issue 20, eighth session").
"""

from __future__ import annotations

import asyncio
import copy
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")
LOGGER = logging.getLogger("rankstack.serving")


class WriterClosedError(RuntimeError):
    """``submit`` after ``close``: the writer takes no more work."""


class LoopWriter(Generic[T, R]):
    """``await submit(item)`` returns ``write([... item ...])``'s result for that item, computed on one thread.

    ``write`` gets every item queued since the last write, in arrival order, and returns one outcome per item: a
    result, or an exception that the item's ``submit`` raises. If ``write`` itself raises, every item of that write
    gets the exception. The thread starts on the first ``submit``; ``close`` lets it finish what is queued.
    """

    def __init__(self, write: Callable[[list[T]], Sequence[R | BaseException]], name: str = "rankstack-writer"
                 ) -> None:
        self._write = write
        self._name = name
        self._cond = threading.Condition()
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._thread: threading.Thread | None = None
        self._closed = False
        self.writes = 0  # write calls so far (items submitted / writes = the grouping achieved)

    async def submit(self, item: T) -> R:
        """Queue ``item`` for the next write and wait for its outcome."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        with self._cond:
            if self._closed:
                raise WriterClosedError(f"{self._name} is closed")
            self._queue.append((item, future))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify()
        return await future

    def pending(self) -> int:
        """Items queued and not yet taken by a write."""
        with self._cond:
            return len(self._queue)

    def close(self, timeout_s: float = 5.0) -> None:
        """Take no more items; wait up to ``timeout_s`` for the thread to write what is queued."""
        with self._cond:
            self._closed = True
            self._cond.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)

    def _run(self) -> None:
        """The writer thread: take everything queued, write it, hand each caller its outcome; until closed."""
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    return
                jobs, self._queue = self._queue, []
            outcomes = self._outcomes([item for item, _ in jobs])
            self.writes += 1
            by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[R], R | BaseException]]] = {}
            for (_, future), outcome in zip(jobs, outcomes, strict=True):
                by_loop.setdefault(future.get_loop(), []).append((future, outcome))
            for loop, settled in by_loop.items():
                try:
                    loop.call_soon_threadsafe(_settle, settled)
                except RuntimeError:  # the loop has closed: nobody is waiting for these any more
                    LOGGER.warning("%s: %d results written for a closed event loop", self._name, len(settled))

    def _outcomes(self, items: list[T]) -> Sequence[R | BaseException]:
        """``write(items)``, its failure repeated for every item when it raises."""
        try:
            outcomes = self._write(items)
            if len(outcomes) != len(items):
                raise RuntimeError(f"write returned {len(outcomes)} outcomes for {len(items)} items")
        except BaseException as exc:  # handed to every caller, not swallowed
            return [exc, *(copy.copy(exc) for _ in items[1:])]  # own copies: callers do not share a traceback
        return outcomes


def _settle(settled: list[tuple[asyncio.Future[R], R | BaseException]]) -> None:
    """On the loop: resolve each future with its outcome (a caller that gave up has a cancelled future)."""
    for future, outcome in settled:
        if future.done():
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
