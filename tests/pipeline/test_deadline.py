"""StageRunner: budgets hold on the worker pool, and a stage runs inline only after it has been fast for a while,
going back to the pool at its first overrun."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from rankstack.pipeline.deadline import StageRunner


def _where(delay_s: float = 0.0) -> Callable[[], int]:
    """A stage that sleeps ``delay_s`` and returns the id of the thread it ran on."""
    def fn() -> int:
        time.sleep(delay_s)
        return threading.get_ident()
    return fn


def test_a_new_stage_runs_on_the_pool_and_times_out_there() -> None:
    runner = StageRunner(inline_after=3)
    start = time.perf_counter()
    outcome = runner.run("ranker", _where(0.5), 0.05)
    assert outcome.error == "timeout" and time.perf_counter() - start < 0.4
    runner.close()


def test_a_stage_fast_for_inline_after_calls_runs_inline() -> None:
    runner, me = StageRunner(inline_after=3), threading.get_ident()
    threads = [runner.run("ranker", _where(), 1.0).value for _ in range(5)]
    assert [t == me for t in threads] == [False, False, False, True, True]
    runner.close()


def test_an_inline_overrun_is_dropped_and_sends_the_stage_back_to_the_pool() -> None:
    runner, me = StageRunner(inline_after=2), threading.get_ident()
    for _ in range(2):
        runner.run("rerank", _where(), 0.05)
    assert runner.inline("rerank")
    late = runner.run("rerank", _where(0.08), 0.05)
    assert late.value is None and late.error == "timeout" and late.seconds >= 0.05
    assert not runner.inline("rerank") and runner.run("rerank", _where(), 0.05).value != me
    runner.close()


def test_a_slow_call_within_budget_still_resets_the_count() -> None:
    runner = StageRunner(inline_after=2, inline_share=0.25)
    for _ in range(2):
        runner.run("retrieval", _where(), 1.0)
    assert runner.inline("retrieval")
    kept = runner.run("retrieval", _where(0.05), 0.1)  # half its budget: served, but no longer trusted inline
    assert kept.ok and not runner.inline("retrieval")
    runner.close()


def test_inline_after_zero_keeps_every_budgeted_call_on_the_pool() -> None:
    runner, me = StageRunner(inline_after=0), threading.get_ident()
    assert all(runner.run("ranker", _where(), 1.0).value != me for _ in range(5))
    assert runner.run("ranker", _where(), None).value == me  # no budget: always inline
    runner.close()


@pytest.mark.parametrize("inline_after", [0, 1])
def test_a_raising_stage_degrades_instead_of_raising(inline_after: int) -> None:
    runner = StageRunner(inline_after=inline_after)
    runner.run("ranker", _where(), 1.0)
    outcome = runner.run("ranker", lambda: 1 / 0, 1.0)
    assert outcome.value is None and outcome.error is not None and outcome.error.startswith("ZeroDivisionError")
    runner.close()
