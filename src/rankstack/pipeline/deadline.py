"""Run a stage under a time budget: its result, or a reason it has none (timed out, not started, or raised)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Generic, TypeVar

from rankstack.pipeline.cost import BatchCost, InlineTrust

T = TypeVar("T")
LOGGER = logging.getLogger("rankstack.pipeline")


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """A stage's result, or None with ``error`` saying why (``"timeout"``, ``"skipped"`` — not started, its budget
    under its expected time — or the exception text); an inline call that ran past its budget keeps its result
    with ``error="late"``."""

    value: T | None
    error: str | None
    seconds: float

    @property
    def ok(self) -> bool:
        """The stage finished in time without raising."""
        return self.error is None


class StageRunner:
    """Runs stage calls under a budget: on a small worker pool per stage, waiting at most the budget, or inline
    once the stage has earned it; a call its budget cannot cover is not started.

    A stage that overruns on a worker keeps running there, but its result is dropped and the caller goes on; a
    stage whose workers are all stuck times out on its own, without starving the other stages. Handing a call
    to a worker costs two thread switches (~0.1 ms of CPU and up to 0.25 ms of wall time each on a busy 2-core
    box), so a stage whose last ``inline_after`` calls each took under ``inline_share`` of its own budget runs in
    the caller's thread instead. Trust is judged against the stage's own budget (``own_s``), not what is left of a
    request's deadline: under load that shrinks, and judging by it would send stages to the pool, paying the hops,
    just when CPU is scarcest. Inline, an overrun is noticed only when the call returns: the work is done, so its
    result is kept (``error="late"``; the later stages find their budget spent and are skipped). Any call that took
    over ``inline_share`` of the stage's own budget sends it back to the pool until it has been fast again
    ``inline_after`` times. ``inline_after=0`` keeps every budgeted call on the pool.

    Each stage's cost is learnt as a line in the batch size (``BatchCost``, from every call that finished, on the
    pool too); a call whose budget is under its expected time is skipped at once (``error="skipped"``) instead
    of run to be thrown away — under overload, dropped work would take the CPU from the requests that can still be
    answered. After ``probe_after`` skips in a row the next call runs anyway, so an estimate learnt in a slow
    spell cannot keep a stage off for good.
    """

    def __init__(self, workers: int = 2, *, inline_after: int = 20, inline_share: float = 0.25,
                 probe_after: int = 8) -> None:
        self._workers = workers
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self.inline_after = inline_after
        self.inline_share = inline_share
        self.probe_after = probe_after
        self._trust: dict[str, InlineTrust] = {}
        self._costs: dict[str, BatchCost] = {}
        self._skips: dict[str, int] = {}

    def inline(self, stage: str) -> bool:
        """Whether the stage's next budgeted call runs in the caller's thread."""
        trust = self._trust.get(stage)
        return trust is not None and trust.earned

    def expected_s(self, stage: str, size: int = 1) -> float:
        """The stage's expected wall time on a batch of ``size`` (0 before its first finished call)."""
        cost = self._costs.get(stage)
        return 0.0 if cost is None else cost.seconds(size)

    def run(self, stage: str, fn: Callable[[], T], budget_s: float | None, size: int = 1, *,
            own_s: float | None = None) -> Outcome[T]:
        """``fn()`` on a batch of ``size`` within ``budget_s`` seconds (None: no limit, run inline); never raises.
        ``own_s`` is the stage's own budget, which its inline trust is judged by (default ``budget_s``)."""
        start = time.perf_counter()
        trust_s, judged = budget_s if own_s is None else own_s, budget_s is None
        try:
            if budget_s is None:
                value = fn()
            else:
                if budget_s <= 0:
                    return Outcome(None, "timeout", 0.0)
                if self._skip(stage, budget_s, size):
                    return Outcome(None, "skipped", 0.0)
                if self.inline(stage):
                    value = fn()
                    seconds = time.perf_counter() - start
                    self._cost(stage).observe(size, seconds)
                    self._trust_of(stage).judge(seconds, trust_s)
                    judged = True
                    if seconds > budget_s:
                        LOGGER.warning("stage %s ran past its %.1f ms budget (inline: result kept)", stage,
                                       1000 * budget_s)
                        return Outcome(value, "late", seconds)
                else:
                    value = self._submit(stage, fn, size).result(timeout=budget_s)
        except FutureTimeout:
            self._trust_of(stage).lose()
            LOGGER.warning("stage %s ran past its %.1f ms budget", stage, 1000 * (budget_s or 0))
            return Outcome(None, "timeout", time.perf_counter() - start)
        except Exception as exc:  # a failing stage degrades the response instead of failing it
            LOGGER.warning("stage %s failed: %r", stage, exc)
            return Outcome(None, f"{type(exc).__name__}: {exc}", time.perf_counter() - start)
        seconds = time.perf_counter() - start
        if not judged:
            self._trust_of(stage).judge(seconds, trust_s)
        return Outcome(value, None, seconds)

    def _trust_of(self, stage: str) -> InlineTrust:
        """The stage's inline trust, made on first use."""
        trust = self._trust.get(stage)
        if trust is None:
            trust = self._trust.setdefault(stage, InlineTrust(self.inline_after, self.inline_share))
        return trust

    def _skip(self, stage: str, budget_s: float, size: int) -> bool:
        """Whether a call with ``budget_s`` is expected to overrun and should not start (every ``probe_after + 1``-th
        such call runs anyway)."""
        if budget_s >= self.expected_s(stage, size):
            self._skips[stage] = 0
            return False
        skips = self._skips.get(stage, 0)
        if skips >= self.probe_after:
            self._skips[stage] = 0
            return False
        self._skips[stage] = skips + 1
        return True

    def _cost(self, stage: str) -> BatchCost:
        """The stage's learnt cost line, made on first use."""
        cost = self._costs.get(stage)
        if cost is None:
            cost = self._costs.setdefault(stage, BatchCost())
        return cost

    def _submit(self, stage: str, fn: Callable[[], T], size: int) -> Future[T]:
        """``fn`` on the stage's pool; its wall time, once it finishes (in time or not), teaches the cost line."""
        def timed() -> T:
            began = time.perf_counter()
            try:
                return fn()
            finally:
                cost.observe(size, time.perf_counter() - began)

        cost = self._cost(stage)
        return self._pool(stage).submit(timed)

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
