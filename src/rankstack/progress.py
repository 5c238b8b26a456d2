"""Progress display: Rich bars on a terminal, periodic plain lines elsewhere (CI, ``nohup``, log files).

``RANKSTACK_QUIET`` silences both. Callers use the Rich ``Progress`` API (``add_task``, ``update``,
``advance``) either way.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta
from typing import Any, TextIO, TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")
QUIET_ENV = "RANKSTACK_QUIET"
PLAIN_EVERY_S = 15.0
_STDERR = Console(stderr=True)


def enabled() -> bool:
    """Progress is shown (on stderr) unless ``RANKSTACK_QUIET`` is set."""
    return not os.environ.get(QUIET_ENV)


def _amount(value: float) -> str:
    """``3`` for a whole count, ``2.4`` part-way."""
    return f"{value:g}" if float(value).is_integer() else f"{value:.1f}"


def _clock(seconds: float) -> str:
    """``0:01:05`` from 65.3."""
    return str(timedelta(seconds=int(seconds)))


class PlainProgress(Progress):
    """Writes one plain line per task at most every ``every_s`` seconds while it runs (what, i/n, elapsed, ETA),
    and a last line when a task that printed finishes; tasks shorter than ``every_s`` print nothing."""

    def __init__(self, stream: TextIO, every_s: float = PLAIN_EVERY_S,
                 get_time: Callable[[], float] | None = None) -> None:
        super().__init__(disable=True, get_time=get_time)
        self.stream = stream
        self.every_s = every_s
        self._last_line: dict[TaskID, float] = {}
        self._finished: set[TaskID] = set()

    def update(self, task_id: TaskID, *args: Any, **kwargs: Any) -> None:
        """Rich's ``update``, then a line if one is due (only when the count moved: a new description alone
        would print the count of the step before)."""
        super().update(task_id, *args, **kwargs)
        if kwargs.get("advance") is not None or kwargs.get("completed") is not None:
            self._report(task_id)

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        """Rich's ``advance``, then a line if one is due."""
        super().advance(task_id, advance)
        self._report(task_id)

    def stop(self) -> None:
        """Say where each task that printed but never finished stopped (e.g. early stopping), then stop."""
        now = self.get_time()
        for task in self.tasks:
            if task.id in self._last_line and task.id not in self._finished and task.start_time is not None:
                self._finished.add(task.id)
                self._say(f"{task.description}: stopped at {self._count(task)} after {_clock(now - task.start_time)}")
        super().stop()

    def _report(self, task_id: TaskID) -> None:
        """Print the task's line when ``every_s`` passed since its last one (or its start), or it just finished."""
        task = next((t for t in self.tasks if t.id == task_id), None)
        if task is None or task.start_time is None or task_id in self._finished:
            return
        now = self.get_time()
        if task.finished:
            self._finished.add(task_id)
            if task_id in self._last_line:
                self._say(f"{task.description}: done, {self._count(task)} in {_clock(now - task.start_time)}")
            return
        if now - self._last_line.get(task_id, task.start_time) >= self.every_s:
            self._last_line[task_id] = now
            self._say(self.line(task, now))

    @staticmethod
    def _count(task: Task) -> str:
        """``3/5 (60%)`` (``2.4/5`` part-way through a step: training advances by each batch's share of an epoch),
        or the bare count when the total is unknown."""
        done = _amount(task.completed)
        if not task.total:
            return done
        return f"{done}/{task.total:g} ({100 * task.completed / task.total:.0f}%)"

    def line(self, task: Task, now: float) -> str:
        """``SASRec: 3/5 (60%), elapsed 0:01:30, ETA 0:01:00`` (ETA from the mean rate so far)."""
        elapsed = now - (task.start_time or now)
        remaining = ((task.total - task.completed) * elapsed / task.completed
                     if task.total and task.completed > 0 else None)
        eta = _clock(remaining) if remaining is not None else "unknown"
        return f"{task.description}: {self._count(task)}, elapsed {_clock(elapsed)}, ETA {eta}"

    def _say(self, line: str) -> None:
        """Write one line and flush it (logs are read while the job runs)."""
        print(line, file=self.stream, flush=True)


def new_progress(transient: bool = True, *, stream: TextIO | None = None) -> Progress:
    """A Rich bar (description, bar, count, elapsed time, ETA) when ``stream`` (default stderr) is a terminal,
    else a :class:`PlainProgress` writing periodic lines to it; quiet under ``RANKSTACK_QUIET``."""
    console = _STDERR if stream is None else Console(file=stream)
    if not enabled() or console.is_terminal:
        return Progress(
            TextColumn("[bold blue]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=transient,
            disable=not enabled(),
        )
    return PlainProgress(stream if stream is not None else sys.stderr)


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate over ``items`` with a transient progress bar (periodic lines when not on a terminal)."""
    with new_progress() as progress:
        yield from progress.track(items, total=total, description=description)
