"""Group commit: concurrent callers' batches written together, one durable write for all of them.

A durable write costs one fsync (milliseconds on most disks) whatever it holds, so callers that each commit their
own small batch queue behind each other's fsyncs: a few hundred commits a second at most. Here the first caller
that finds no write running becomes the leader: it takes every batch queued so far, writes them in one call, and
hands each caller its own result; callers arriving meanwhile queue for the next write. Each caller still returns
only after the write that holds its batch has committed, so an acknowledgement keeps meaning "stored durably".
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class _Ticket(Generic[T, R]):
    """One caller's batch and, once written, its result or the write's error."""

    batch: T
    done: bool = False
    result: R | None = None
    error: BaseException | None = None


class GroupCommit(Generic[T, R]):
    """``submit(batch)`` returns ``write([... batch ...])``'s result for that batch; concurrent submits share one
    ``write`` call. ``write`` gets the batches in arrival order and returns one result per batch; if it raises,
    every caller of that write gets the exception (nothing of theirs was committed)."""

    def __init__(self, write: Callable[[list[T]], list[R]]) -> None:
        self._write = write
        self._cond = threading.Condition()
        self._queue: list[_Ticket[T, R]] = []
        self._writing = False
        self.writes = 0  # write calls so far (batches submitted / writes = the grouping achieved)

    def submit(self, batch: T) -> R:
        """Queue ``batch``, lead the next write or wait for the one that takes it, and return its result."""
        ticket: _Ticket[T, R] = _Ticket(batch)
        with self._cond:
            self._queue.append(ticket)
            while not ticket.done and self._writing:
                self._cond.wait()
            if ticket.done:
                return self._outcome(ticket, led=False)
            self._writing = True
            group, self._queue = self._queue, []
        try:
            results = self._write([t.batch for t in group])
            if len(results) != len(group):
                raise RuntimeError(f"group write returned {len(results)} results for {len(group)} batches")
            for t, result in zip(group, results, strict=True):
                t.result = result
        except BaseException as exc:
            for t in group:
                t.error = exc
        finally:
            with self._cond:
                self.writes += 1
                for t in group:
                    t.done = True
                self._writing = False
                self._cond.notify_all()
        return self._outcome(ticket, led=True)

    @staticmethod
    def _outcome(ticket: _Ticket[T, R], *, led: bool) -> R:
        """The ticket's result, or its write's error raised in this caller (a copy outside the leader, so that
        threads do not share one traceback)."""
        if ticket.error is not None:
            raise ticket.error if led else copy.copy(ticket.error)
        return ticket.result  # type: ignore[return-value]
