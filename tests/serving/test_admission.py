"""Deadline-aware admission: the batch-cost fit, the expected time to an answer, and when a request is shed."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rankstack.serving.admission import (
    RETRY_AFTER_MAX_S,
    Admission,
    BatchCost,
    OverloadedError,
    OverrunMargin,
    PostsInFlight,
)

BATCHES = st.lists(st.tuples(st.integers(1, 64), st.floats(0.0, 0.5)), max_size=40)


def trained(batches: list[tuple[int, float]], **kw: object) -> Admission:
    """An admission control that has seen ``batches`` of (size, seconds)."""
    admission = Admission(**{"max_batch": 8, "max_queue": 100, "deadline_s": 0.1, **kw})  # type: ignore[arg-type]
    for size, seconds in batches:
        admission.observe(size, seconds)
    return admission


def test_the_fit_recovers_a_line_from_batches_of_several_sizes() -> None:
    cost = BatchCost()
    for size in [1, 4, 2, 8, 3, 16, 5] * 5:
        cost.observe(size, 0.002 + 0.0005 * size)
    assert cost.alpha == pytest.approx(0.002) and cost.beta == pytest.approx(0.0005)
    assert cost.seconds(32) == pytest.approx(0.018)


def test_one_batch_size_is_taken_as_a_cost_proportional_to_size() -> None:
    cost = BatchCost()
    assert cost.seconds(8) == 0.0  # nothing seen yet: nothing is shed for its cost
    for _ in range(5):
        cost.observe(2, 0.01)
    assert cost.seconds(2) == pytest.approx(0.01) and cost.seconds(8) == pytest.approx(0.04)


def test_recent_batches_weigh_more() -> None:
    cost = BatchCost(halflife=4)
    for _ in range(50):
        cost.observe(4, 0.1)
    for _ in range(20):
        cost.observe(4, 0.01)
    assert cost.seconds(4) < 0.02


def test_one_stalled_batch_moves_the_estimate_by_at_most_a_few_times() -> None:
    cost = BatchCost()
    for size in [1, 2, 4] * 10:
        cost.observe(size, 0.01 * size)
    cost.observe(4, 5.0)  # the process was paused for 5 s
    assert cost.seconds(4) < 0.06
    for _ in range(40):  # but a pipeline that really got 50 times slower is followed within a few dozen batches
        cost.observe(4, 2.0)
    assert cost.seconds(4) > 1.0


@given(BATCHES)
def test_the_fit_is_never_negative(batches: list[tuple[int, float]]) -> None:
    cost = BatchCost()
    for size, seconds in batches:
        cost.observe(size, seconds)
    assert cost.alpha >= 0 and cost.beta >= 0


@given(BATCHES, st.integers(0, 99), st.floats(0.0, 0.2), st.floats(0.0, 0.2))
def test_a_request_is_admitted_exactly_when_it_is_expected_within_its_deadline(
        batches: list[tuple[int, float]], ahead: int, waited: float, running_left: float) -> None:
    admission = trained(batches)
    expected = waited + admission.expected_s(ahead, running_left)
    idle = ahead == 0 and running_left == 0
    try:
        admission.admit(ahead, waited, running_left)
    except OverloadedError as exc:
        assert exc.reason == "deadline" and not idle and expected > 0.1
        assert 1 <= exc.retry_after_s <= RETRY_AFTER_MAX_S
        assert exc.expected_s == pytest.approx(expected)
    else:
        assert idle or expected <= 0.1


@given(BATCHES, st.floats(0.0, 10.0))
def test_an_idle_server_always_admits(batches: list[tuple[int, float]], waited: float) -> None:
    trained(batches).admit(0, waited)  # even a pipeline slower than its deadline gets requests, and fresh estimates


@pytest.mark.parametrize("shed", [True, False])
def test_max_queue_is_the_hard_bound_with_or_without_shedding(shed: bool) -> None:
    admission = trained([], max_queue=3, shed=shed)
    admission.admit(2)
    with pytest.raises(OverloadedError, match="3 requests are already waiting") as caught:
        admission.admit(3)
    assert caught.value.reason == "queue_full"


def test_without_shedding_only_the_queue_bound_refuses() -> None:
    admission = trained([(8, 1.0)] * 3, shed=False)
    admission.admit(50, waited_s=5.0)
    assert admission.expired(5.0) is None


def test_expected_time_counts_full_batches_gaps_and_the_own_batch() -> None:
    admission = trained([(8, 0.02)] * 3)  # proportional: t(b) = 2.5 ms · b
    admission.gap_s = 0.001
    assert admission.expected_s(0) == pytest.approx(0.0025)
    assert admission.expected_s(8) == pytest.approx(0.02 + 0.001 + 0.0025)
    assert admission.expected_s(19, running_left_s=0.005) == pytest.approx(0.005 + 2 * 0.021 + 0.0025 * 4)
    admission.admit(31)  # 3 full batches + own of 8: 63 + 20 = 83 ms
    with pytest.raises(OverloadedError, match="past the 100 ms deadline"):
        admission.admit(31, waited_s=0.02)


def test_a_queued_request_expires_at_its_deadline() -> None:
    admission = trained([])
    assert admission.expired(0.0999) is None
    error = admission.expired(0.1)
    assert error is not None and error.reason == "expired" and error.retry_after_s == 1


@pytest.mark.parametrize(("waited", "size", "expired"), [
    (0.05, 4, False),  # 50 + 40 ms: in time
    (0.065, 4, True),  # 65 + 40 ms: it would be answered late
    (0.065, 2, False),  # a smaller batch is quicker: 65 + 20 ms
    (0.03, 8, False),  # waited less than its batch takes (80 ms): runs, even though 30 + 80 > 100
    (0.09, 8, True),
])
def test_a_queued_request_expires_when_its_batch_would_end_past_the_deadline(waited: float, size: int,
                                                                             expired: bool) -> None:
    admission = trained([(4, 0.04)] * 3)  # 10 ms per request
    assert (admission.expired(waited, size) is not None) is expired


@given(BATCHES, st.floats(0.0, 0.2), st.integers(1, 64))
def test_a_request_that_waited_less_than_its_batch_takes_is_never_dropped_before_its_deadline(
        batches: list[tuple[int, float]], waited: float, size: int) -> None:
    admission = trained(batches)
    if waited < min(admission.cost.seconds(size), 0.1):
        assert admission.expired(waited, size) is None


def test_the_gap_is_an_exponentially_weighted_mean() -> None:
    admission = trained([], halflife=1)
    admission.observe_gap(0.01)
    admission.observe_gap(0.01)
    assert admission.gap_s == pytest.approx(0.0075)


def test_retry_after_is_the_drain_time_in_whole_seconds() -> None:
    admission = trained([(8, 0.5)] * 3)
    assert admission.retry_after_s(0) == 1
    assert admission.retry_after_s(24) == 2  # 3 batches of 0.5 s
    assert admission.retry_after_s(10_000) == RETRY_AFTER_MAX_S


def test_a_bad_halflife_is_refused() -> None:
    with pytest.raises(ValueError, match="halflife must be positive"):
        BatchCost(halflife=0)


def test_the_margin_is_the_quantile_of_recent_overruns() -> None:
    margin = OverrunMargin(cap_s=1.0, quantile=0.9, window=100, every=10)
    for _ in range(9):
        margin.observe(0.01, 0.5)
    assert margin.value_s == 0.0  # not recomputed before ``every`` answers
    for i in range(91):
        margin.observe(0.01, 0.01 + i / 1000)  # overruns 0 … 90 ms
    overruns = [0.49] * 9 + [i / 1000 for i in range(91)]
    assert margin.value_s == pytest.approx(float(np.quantile(overruns, 0.9)))
    for _ in range(100):  # the window forgets: answers on time again
        margin.observe(0.01, 0.005)
    assert margin.value_s == 0.0  # early answers are no negative margin


@given(st.lists(st.tuples(st.floats(0.0, 1.0), st.floats(0.0, 100.0)), max_size=200))
def test_the_margin_stays_within_zero_and_its_cap(answers: list[tuple[float, float]]) -> None:
    margin = OverrunMargin(cap_s=0.05, every=1)
    for expected, took in answers:
        margin.observe(expected, took)
        assert 0.0 <= margin.value_s <= 0.05


@pytest.mark.parametrize("kw", [{"cap_s": -1.0}, {"quantile": 0.0}, {"quantile": 1.0}, {"window": 0}, {"every": 0}])
def test_a_bad_margin_is_refused(kw: dict[str, float]) -> None:
    args: dict[str, Any] = {"cap_s": 0.05, **kw}
    with pytest.raises(ValueError, match=next(iter(kw))):
        OverrunMargin(**args)


def test_answers_later_than_expected_make_admission_stricter() -> None:
    admission = trained([(1, 0.02)] * 20)  # 20 ms a request
    expected = admission.admit(2, waited_s=0.03)  # its batch of 3: 60 ms expected, 90 ms in all: admitted
    assert expected == pytest.approx(admission.expected_s(2)) == pytest.approx(0.06)
    for _ in range(300):  # every answer came 30 ms later than expected
        admission.answered(expected, expected + 0.03)
    assert admission.margin.value_s == pytest.approx(0.03)
    with pytest.raises(OverloadedError) as refused:
        admission.admit(2, waited_s=0.03)
    assert refused.value.expected_s == pytest.approx(0.03 + expected + 0.03)
    admission.admit(0, waited_s=0.5)  # an idle server still admits (and its answers keep teaching the margin)
    for _ in range(300):  # on time again: the margin is forgotten
        admission.answered(expected, expected)
    assert admission.margin.value_s == 0.0
    admission.admit(2, waited_s=0.03)


def test_the_margin_is_capped_at_half_the_deadline() -> None:
    admission = trained([(1, 0.02)] * 20)
    for _ in range(300):
        admission.answered(0.02, 5.0)
    assert admission.margin.value_s == pytest.approx(0.05)


def test_event_posts_are_refused_once_the_oldest_in_flight_is_past_the_deadline() -> None:
    posts = PostsInFlight(max_queue=10, deadline_s=1.0)
    first = posts.enter(0.0)
    second = posts.enter(0.9)  # the oldest has waited 0.9 s: in time
    with pytest.raises(OverloadedError) as refused:
        posts.enter(1.5)
    assert refused.value.reason == "deadline" and refused.value.expected_s == pytest.approx(1.5)
    assert refused.value.retry_after_s == 2 and len(posts) == 2  # nothing entered
    posts.leave(first)  # stored: now the oldest is the second, 0.6 s old
    posts.enter(1.5)
    posts.leave(second)
    posts.leave(second)  # leaving twice is harmless
    assert len(posts) == 1


def test_event_posts_past_max_queue_are_refused_with_or_without_a_deadline() -> None:
    for deadline in (None, 1.0):
        posts = PostsInFlight(max_queue=2, deadline_s=deadline)
        posts.enter(0.0)
        posts.enter(0.0)
        with pytest.raises(OverloadedError) as refused:
            posts.enter(0.1)
        assert refused.value.reason == "queue_full"


def test_without_a_deadline_old_posts_do_not_refuse_new_ones() -> None:
    posts = PostsInFlight(max_queue=5, deadline_s=None)
    posts.enter(0.0)
    posts.enter(100.0)
    assert len(posts) == 2
