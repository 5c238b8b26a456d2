"""The state guard: reads bounded by a budget, a breaker with doubling back-off, health probes, durability check."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, Gauge
from serving_fakes import load_fake, write_fake_artifact

from rankstack.serving import ServiceSettings, create_app
from rankstack.serving.guard import (
    BoundedCalls,
    DurabilityWatch,
    GuardedState,
    HealthProbe,
    StateBreaker,
    StoreBusyError,
)
from rankstack.state import SQLiteStateStore, StateStoreError


class HungStore(SQLiteStateStore):
    """A SQLite store whose reads and health checks block until ``release`` is set (a SIGSTOPped server)."""

    release = threading.Event()
    hung = True

    def recent_items(self, user_id: str, n: int, *, events: Sequence[str] = ("click", "conversion")) -> list[str]:
        if self.hung:
            self.release.wait(5)
        return super().recent_items(user_id, n, events=events)

    def healthy(self) -> bool:
        if self.hung:
            self.release.wait(5)
        return super().healthy()


@pytest.fixture
def hung(tmp_path: Path) -> Iterator[HungStore]:
    store = HungStore(tmp_path / "state.db")
    store.release = threading.Event()
    yield store
    store.release.set()
    store.close()


def test_the_breaker_pause_doubles_up_to_its_cap_and_resets_on_success() -> None:
    breaker = StateBreaker(1.0, 5.0)
    pauses = []
    for _ in range(5):
        breaker.open_until = 0.0  # the pause has passed: the next failure is a failed probe
        pauses.append(breaker.pause_s())
        breaker.trip()
    assert pauses == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert breaker.is_open() and breaker.open_until - time.monotonic() == pytest.approx(5.0, abs=0.1)
    breaker.trip()  # another failure while open (an event write): no longer, no doubling
    assert breaker.failures == 5 and breaker.open_until - time.monotonic() == pytest.approx(5.0, abs=0.1)
    breaker.reset()
    assert not breaker.is_open() and breaker.pause_s() == 1.0


def test_a_hung_read_costs_its_budget_then_the_breaker_skips_the_store(hung: HungStore) -> None:
    breaker, reader = StateBreaker(60.0), BoundedCalls(2)
    view = GuardedState(hung, breaker, reader, timeout_s=0.05)
    t0 = time.perf_counter()
    assert view.recent_items("u", 5) == [] and view.degraded
    assert 0.04 < time.perf_counter() - t0 < 0.5
    assert breaker.is_open()
    t0 = time.perf_counter()
    assert GuardedState(hung, breaker, reader, timeout_s=0.05).recent_items("u", 5) == []
    assert time.perf_counter() - t0 < 0.01  # skipped: the breaker is open


def test_a_read_never_waits_past_the_deadline(hung: HungStore) -> None:
    view = GuardedState(hung, StateBreaker(60.0), BoundedCalls(2), timeout_s=1.0,
                        deadline_at=time.perf_counter() + 0.03)
    t0 = time.perf_counter()
    assert view.recent_items("u", 5) == []
    assert time.perf_counter() - t0 < 0.3


def test_busy_reader_threads_fail_a_new_read_at_once(hung: HungStore) -> None:
    reader = BoundedCalls(1)
    with pytest.raises(TimeoutError):
        reader.call(lambda: hung.recent_items("u", 5), 0.01)
    t0 = time.perf_counter()
    with pytest.raises(StoreBusyError):
        reader.call(lambda: 1, 1.0)
    assert time.perf_counter() - t0 < 0.05
    hung.release.set()
    time.sleep(0.1)
    assert reader.call(lambda: 1, 1.0) == 1


def test_a_success_after_the_pause_closes_the_breaker(hung: HungStore) -> None:
    breaker = StateBreaker(0.0)
    GuardedState(hung, breaker, BoundedCalls(2), timeout_s=0.02).recent_items("u", 5)
    assert breaker.failures == 1
    hung.hung = False
    hung.release.set()
    view = GuardedState(hung, breaker, BoundedCalls(2), timeout_s=1.0)
    assert view.recent_items("u", 5) == [] and not view.degraded and breaker.failures == 0


def test_health_probes_are_bounded_and_shared(hung: HungStore) -> None:
    probe = HealthProbe(hung, 0.05)
    answers: list[bool] = []
    threads = [threading.Thread(target=lambda: answers.append(probe.healthy())) for _ in range(3)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == [False, False, False] and time.perf_counter() - t0 < 0.5
    hung.hung = False
    hung.release.set()
    time.sleep(0.05)
    assert probe.healthy()


class DurabilityStore(SQLiteStateStore):
    """A store that is down until ``up`` and then reports Redis-like durability settings that can lose events."""

    up = False

    def healthy(self) -> bool:
        return self.up

    def durability_problem(self) -> str | None:
        if not self.up:
            raise StateStoreError("down")
        return "appendfsync=everysec: acknowledged events can be lost on a crash"


def test_a_store_down_at_start_gets_its_durability_warning_once_it_answers(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = DurabilityStore(tmp_path / "state.db")
    settings = ServiceSettings(artifact=write_fake_artifact(tmp_path / "v1"))
    with caplog.at_level(logging.WARNING), TestClient(create_app(load_fake, store, settings)) as client:
        assert client.get("/readyz").status_code == 503
        assert "can be lost" not in caplog.text
        assert "rankstack_state_store_durable -1.0" in client.get("/metrics").text  # not known yet
        store.up = True
        assert client.get("/readyz").status_code == 200
        assert caplog.text.count("can be lost") == 1
        assert "rankstack_state_store_durable 0.0" in client.get("/metrics").text
        client.get("/readyz")
        assert caplog.text.count("can be lost") == 1
    store.close()


def test_durability_of_a_store_without_settings_is_not_questioned() -> None:
    gauge = Gauge("durable", "test", registry=CollectorRegistry())
    assert DurabilityWatch(object(), gauge).done  # type: ignore[arg-type]
    assert gauge._value.get() == 1.0


def _reads_on(reader: BoundedCalls, calls: int, seconds: float = 0.0, timeout_s: float = 1.0) -> list[bool]:
    """For each of ``calls`` calls taking ``seconds``, whether it ran on the caller's thread."""
    here = threading.get_ident()

    def read() -> bool:
        time.sleep(seconds)
        return threading.get_ident() == here

    return [reader.call(read, timeout_s) for _ in range(calls)]


def test_fast_calls_earn_the_callers_thread() -> None:
    """After ``inline_after`` fast calls the next run inline; without ``inline_after`` never."""
    assert _reads_on(BoundedCalls(2, inline_after=3), 5) == [False, False, False, True, True]
    assert not any(_reads_on(BoundedCalls(2), 25))


def test_a_slow_inline_call_keeps_its_value_and_sends_the_next_to_a_thread() -> None:
    reader = BoundedCalls(2, inline_after=2)
    _reads_on(reader, 2)
    assert reader.inline
    assert _reads_on(reader, 1, seconds=0.05, timeout_s=0.02) == [True]  # overran: answered late, not cut off
    assert not reader.inline and _reads_on(reader, 3) == [False, False, True]


def test_an_inline_call_that_raises_sends_the_next_to_a_thread() -> None:
    reader = BoundedCalls(2, inline_after=1)
    _reads_on(reader, 1)

    def fail() -> None:
        raise StateStoreError("gone")

    with pytest.raises(StateStoreError):
        reader.call(fail, 1.0)
    assert not reader.inline and _reads_on(reader, 2) == [False, True]


def test_a_store_hung_from_the_start_is_never_read_inline(hung: HungStore) -> None:
    """Its reads time out on the threads, so they never earn the inline path; each costs only its budget."""
    reader = BoundedCalls(4, inline_after=1)
    for _ in range(3):
        t0 = time.perf_counter()
        with pytest.raises(TimeoutError):
            reader.call(lambda: hung.recent_items("u", 5), 0.02)
        assert time.perf_counter() - t0 < 0.3
    assert not reader.inline
