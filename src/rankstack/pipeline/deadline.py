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
    """Runs stage calls inline (no budget) or on a small worker pool per stage, waiting at most the budget.

    A stage that overruns keeps running on its worker, but its result is dropped and the caller goes on; a
    stage whose workers are all stuck times out on its own, without starving the other stages.
    """

    def __init__(self, workers: int = 2) -> None:
        self._workers = workers
        self._pools: dict[str, ThreadPoolExecutor] = {}

    def run(self, stage: str, fn: Callable[[], T], budget_s: float | None) -> Outcome[T]:
        """``fn()`` within ``budget_s`` seconds (None: no limit, run inline); never raises."""
        start = time.perf_counter()
        try:
            if budget_s is None:
                value = fn()
            else:
                if budget_s <= 0:
                    return Outcome(None, "timeout", 0.0)
                pool = self._pools.get(stage)
                if pool is None:
                    pool = self._pools.setdefault(
                        stage, ThreadPoolExecutor(self._workers, thread_name_prefix=f"rankstack-{stage}"))
                value = pool.submit(fn).result(timeout=budget_s)
        except FutureTimeout:
            LOGGER.warning("stage %s ran past its %.1f ms budget", stage, 1000 * (budget_s or 0))
            return Outcome(None, "timeout", time.perf_counter() - start)
        except Exception as exc:  # a failing stage degrades the response instead of failing it
            LOGGER.warning("stage %s failed: %r", stage, exc)
            return Outcome(None, f"{type(exc).__name__}: {exc}", time.perf_counter() - start)
        return Outcome(value, None, time.perf_counter() - start)

    def close(self) -> None:
        """Stop the worker pools (running stages finish in the background)."""
        pools, self._pools = self._pools, {}
        for pool in pools.values():
            pool.shutdown(wait=False, cancel_futures=True)
