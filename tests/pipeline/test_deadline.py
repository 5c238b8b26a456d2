"""StageRunner: budgets hold on the worker pool, a stage runs inline only after it has been fast for a while (going
back to the pool at its first overrun), and a call its budget cannot cover is not started."""

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


def test_an_inline_overrun_keeps_its_result_and_sends_the_stage_back_to_the_pool() -> None:
    runner, me = StageRunner(inline_after=2), threading.get_ident()
    for _ in range(2):
        runner.run("rerank", _where(), 0.05)
    assert runner.inline("rerank")
    late = runner.run("rerank", _where(0.08), 0.05)
    assert late.value == me and late.error == "late" and late.seconds >= 0.05  # the work was done: kept
    assert not runner.inline("rerank") and runner.run("rerank", _where(), 0.05).value != me
    runner.close()


def _calls(delay_s: float = 0.0) -> tuple[list[int], Callable[[], int]]:
    """A stage that sleeps ``delay_s`` and counts its calls."""
    calls: list[int] = []

    def fn() -> int:
        calls.append(1)
        time.sleep(delay_s)
        return len(calls)
    return calls, fn


def test_a_call_its_budget_cannot_cover_is_not_started() -> None:
    runner = StageRunner(inline_after=0)
    calls, fn = _calls(0.03)
    for _ in range(3):
        assert runner.run("ranker", fn, 1.0).ok
    assert runner.expected_s("ranker") == pytest.approx(0.03, abs=0.02)
    skipped = runner.run("ranker", fn, 0.01)
    assert skipped.value is None and skipped.error == "skipped" and skipped.seconds == 0.0 and len(calls) == 3
    assert runner.run("ranker", fn, 1.0).ok and len(calls) == 4  # a budget that covers it: runs
    runner.close()


def test_after_probe_after_skips_one_call_runs_anyway() -> None:
    runner = StageRunner(inline_after=0, probe_after=3)
    _, fn = _calls(0.02)
    runner.run("retrieval", fn, 1.0)
    outcomes = [runner.run("retrieval", fn, 0.005).error for _ in range(8)]
    assert outcomes[:3] == ["skipped"] * 3 and outcomes[3] == "timeout" and outcomes[4:7] == ["skipped"] * 3
    runner.close()


def test_the_expected_time_grows_with_the_batch() -> None:
    runner = StageRunner(inline_after=0)
    for size in (1, 4, 1, 4):
        runner.run("rerank", lambda size=size: time.sleep(0.002 + 0.004 * size), 1.0, size=size)
    assert runner.expected_s("rerank", 4) > 2 * runner.expected_s("rerank", 1) > 0
    assert runner.run("rerank", lambda: None, runner.expected_s("rerank", 4) * 0.6, size=4).error == "skipped"
    assert runner.run("rerank", lambda: None, runner.expected_s("rerank", 4) * 0.6, size=1).ok
    runner.close()


def test_a_call_that_timed_out_on_the_pool_still_teaches_its_cost() -> None:
    runner = StageRunner(inline_after=0)
    assert runner.run("ranker", _where(0.1), 0.02).error == "timeout"
    time.sleep(0.2)  # it finishes on its worker
    assert runner.expected_s("ranker") >= 0.09
    runner.close()


def test_a_slow_call_within_budget_still_resets_the_count() -> None:
    runner = StageRunner(inline_after=2, inline_share=0.25)
    for _ in range(2):
        runner.run("retrieval", _where(), 1.0)
    assert runner.inline("retrieval")
    kept = runner.run("retrieval", _where(0.05), 0.1)  # half its budget: served, but no longer trusted inline
    assert kept.ok and not runner.inline("retrieval")
    runner.close()


def test_inline_trust_is_judged_by_the_stage_own_budget_not_the_deadline_left() -> None:
    runner, me = StageRunner(inline_after=2, inline_share=0.25), threading.get_ident()
    for _ in range(2):  # 10 ms against a 30 ms cap: slow for what is left, fast for its own 1 s
        assert runner.run("ranker", _where(0.01), 0.03, own_s=1.0).ok
    assert runner.inline("ranker")
    late = runner.run("ranker", _where(0.08), 0.05, own_s=1.0)  # past what was left, well within its own budget
    assert late.value == me and late.error == "late" and runner.inline("ranker")
    assert runner.run("ranker", _where(0.3), 0.4, own_s=1.0).ok and not runner.inline("ranker")  # over 25% of 1 s
    judged_by_cap = StageRunner(inline_after=2, inline_share=0.25)
    for _ in range(2):
        judged_by_cap.run("ranker", _where(0.01), 0.03)
    assert not judged_by_cap.inline("ranker")
    runner.close()
    judged_by_cap.close()


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
