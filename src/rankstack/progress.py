"""Rich progress bars that stay quiet in tests and when output is not a terminal-like stream."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

T = TypeVar("T")
QUIET_ENV = "RANKSTACK_QUIET"
_STDERR = Console(stderr=True)


def enabled() -> bool:
    """Progress is shown (on stderr, when it is a terminal) unless ``RANKSTACK_QUIET`` is set."""
    return not os.environ.get(QUIET_ENV)


def new_progress(transient: bool = True) -> Progress:
    """A progress display with description, bar, count and elapsed time."""
    return Progress(
        TextColumn("[bold blue]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=_STDERR,
        transient=transient,
        disable=not enabled() or not _STDERR.is_terminal,
    )


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate over ``items`` with a transient progress bar."""
    with new_progress() as progress:
        yield from progress.track(items, total=total, description=description)
