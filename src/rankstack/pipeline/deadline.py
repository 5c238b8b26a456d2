"""Run a stage under a time budget: its result, or a reason it has none (timed out or raised)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
LOGGER = logging.getLogger("rankstack.pipeline")


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """A stage's result, or None with ``error`` saying why (``"timeout"`` or the exception text)."""

    value: T | None
    error: str | None
    seconds: float

    @property
    def ok(self) -> bool:
        """The stage finished in time without raising."""
        return self.error is None


class StageRunner:
    """Runs stage calls under a budget: on a small worker pool per stage, waiting at most the budget, or inline
    once the stage has earned it.

    A stage that overruns on a worker keeps running there, but its result is dropped and the caller goes on; a
    stage whose workers are all stuck times out on its own, without starving the other stages. Handing a call
    to a worker costs two thread switches (~0.1 ms of CPU and up to 0.25 ms of wall time each on a busy 2-core
    box), so a stage whose last ``inline_after`` calls each took under ``inline_share`` of their budget runs in
    the caller's thread instead. Inline, an overrun is noticed only when the call returns: its result is dropped
    as on a timeout (the slate degrades the same way), and the stage goes back to the pool until it has been
    fast again ``inline_after`` times. ``inline_after=0`` keeps every budgeted call on the pool.
    """

    def __init__(self, workers: int = 2, *, inline_after: int = 20, inline_share: float = 0.25) -> None:
        self._workers = workers
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self.inline_after = inline_after
        self.inline_share = inline_share
        self._fast_runs: dict[str, int] = {}

    def inline(self, stage: str) -> bool:
        """Whether the stage's next budgeted call runs in the caller's thread."""
        return self.inline_after > 0 and self._fast_runs.get(stage, 0) >= self.inline_after

    def run(self, stage: str, fn: Callable[[], T], budget_s: float | None) -> Outcome[T]:
        """``fn()`` within ``budget_s`` seconds (None: no limit, run inline); never raises."""
        start = time.perf_counter()
        try:
            if budget_s is None:
                value = fn()
            else:
                if budget_s <= 0:
                    return Outcome(None, "timeout", 0.0)
                if self.inline(stage):
                    value = fn()
                    if time.perf_counter() - start > budget_s:
                        raise FutureTimeout
                else:
                    value = self._pool(stage).submit(fn).result(timeout=budget_s)
        except FutureTimeout:
            self._fast_runs[stage] = 0
            LOGGER.warning("stage %s ran past its %.1f ms budget", stage, 1000 * (budget_s or 0))
            return Outcome(None, "timeout", time.perf_counter() - start)
        except Exception as exc:  # a failing stage degrades the response instead of failing it
            LOGGER.warning("stage %s failed: %r", stage, exc)
            return Outcome(None, f"{type(exc).__name__}: {exc}", time.perf_counter() - start)
        seconds = time.perf_counter() - start
        if budget_s is not None:
            fast = seconds < self.inline_share * budget_s
            self._fast_runs[stage] = self._fast_runs.get(stage, 0) + 1 if fast else 0
        return Outcome(value, None, seconds)

    def _pool(self, stage: str) -> ThreadPoolExecutor:
        """The stage's worker pool, started on first use."""
        pool = self._pools.get(stage)
        if pool is None:
            pool = self._pools.setdefault(
                stage, ThreadPoolExecutor(self._workers, thread_name_prefix=f"rankstack-{stage}"))
        return pool

    def close(self) -> None:
        """Stop the worker pools (running stages finish in the background)."""
        pools, self._pools = self._pools, {}
        for pool in pools.values():
            pool.shutdown(wait=False, cancel_futures=True)
