"""``--pin-workers``: each server process runs on one core of those it may use.

Measured on the 2-core benchmark box (docs/benchmarks.md, "Issue 20, twentieth session"): two unpinned workers
and the load generator moved between the cores 29–46 times a second, and each move leaves a worker's caches on
the other core; pinned, a worker's loop, batch and event-writer threads also hand the GIL to each other on one
core instead of waking a thread on the other. For a box given to the service; left off, the kernel places them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

from rankstack.errors import ConfigError

log = logging.getLogger(__name__)


def usable_cores() -> list[int]:
    """The cores this process may run on, in order (``ConfigError`` where the platform cannot pin)."""
    if not hasattr(os, "sched_getaffinity") or not hasattr(os, "sched_setaffinity"):
        raise ConfigError("--pin-workers needs CPU affinity (os.sched_setaffinity), which this platform lacks")
    return sorted(os.sched_getaffinity(0))


def seat_core(seat: int, cores: Sequence[int]) -> int:
    """The core of worker place ``seat``: the cores in turn (more workers than cores share them round robin)."""
    if not cores:
        raise ValueError("no cores to pin to")
    return cores[seat % len(cores)]


def pin_process(core: int) -> None:
    """Run every thread of this process, and those it starts later, on ``core`` only; a failure is logged and
    leaves the process where it was (pinning is an optimisation, never a reason not to serve)."""
    try:
        tasks = [int(tid) for tid in os.listdir("/proc/self/task")]
    except OSError:
        tasks = [0]  # no /proc: the calling thread (threads started later inherit it)
    try:
        for tid in tasks:
            try:
                os.sched_setaffinity(tid, {core})
            except ProcessLookupError:  # the thread ended meanwhile
                continue
    except OSError as exc:
        log.warning("process %d could not be pinned to core %d: %s", os.getpid(), core, exc)
        return
    log.info("process %d runs on core %d", os.getpid(), core)
