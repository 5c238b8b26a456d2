"""Group commit: concurrent batches share one write, each caller gets its own result only after that write."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from rankstack.events import Event
from rankstack.state import SQLiteStateStore, StateStoreError
from rankstack.state.group_commit import GroupCommit


def gated(calls: list[list[int]], gate: threading.Event) -> Callable[[list[int]], list[int]]:
    """A write that records its batches and holds its first call until ``gate`` opens."""

    def write(batches: list[int]) -> list[int]:
        calls.append(list(batches))
        if len(calls) == 1:
            assert gate.wait(5)
        return [b * 10 for b in batches]

    return write


def test_one_caller_alone_writes_its_own_batch() -> None:
    calls: list[list[int]] = []
    gate = threading.Event()
    gate.set()
    group = GroupCommit(gated(calls, gate))
    assert [group.submit(b) for b in (1, 2, 3)] == [10, 20, 30]
    assert calls == [[1], [2], [3]] and group.writes == 3


def test_batches_queued_behind_a_running_write_share_the_next_one() -> None:
    calls: list[list[int]] = []
    gate = threading.Event()
    group = GroupCommit(gated(calls, gate))
    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(group.submit, 0)
        while not calls:  # the first write is running (and held)
            time.sleep(0.001)
        rest = [pool.submit(group.submit, b) for b in range(1, 8)]
        while len(group._queue) < 7:
            time.sleep(0.001)
        assert not any(f.done() for f in rest)  # nobody is answered before the write holding its batch
        gate.set()
        assert first.result(5) == 0 and [f.result(5) for f in rest] == [10 * b for b in range(1, 8)]
    assert calls[0] == [0] and sorted(calls[1]) == list(range(1, 8)) and group.writes == 2


def test_a_failed_write_fails_every_caller_in_it_and_the_next_write_works() -> None:
    fail = threading.Event()
    fail.set()

    def write(batches: list[int]) -> list[int]:
        if fail.is_set():
            raise OSError("disk full")
        return batches

    group = GroupCommit(write)
    with pytest.raises(OSError, match="disk full"):
        group.submit(1)
    fail.clear()
    assert group.submit(2) == 2


def test_a_write_must_answer_every_batch() -> None:
    group: GroupCommit[int, int] = GroupCommit(lambda batches: [])
    with pytest.raises(RuntimeError, match="0 results for 1 batches"):
        group.submit(1)


def event(i: int, user: str = "u") -> Event:
    return Event(event_id=f"e{i}", user_id=user, item_id=f"i{i}", event="click", timestamp=1_000.0 + i)


def test_sqlite_groups_concurrent_posts_and_counts_each_callers_new_events(tmp_path: Path) -> None:
    store = SQLiteStateStore(tmp_path / "s.db")
    write = store._group._write

    def slow(batches: list[list[Event]]) -> list[int]:  # a slow fsync, so that posts pile up behind it
        time.sleep(0.05)
        return write(batches)

    store._group._write = slow
    batches = [[event(2 * t), event(2 * t + 1)] for t in range(12)] + [[event(0), event(100)]]
    with ThreadPoolExecutor(13) as pool:
        news = list(pool.map(store.add_events, batches))
    assert sum(news) == 25 and news.count(2) >= 11  # e0 arrives twice: counted new once
    assert store._group.writes < len(batches)
    assert sorted(store.recent_items("u", 100)) == sorted([f"i{i}" for i in range(24)] + ["i100"])


def test_sqlite_group_failure_reaches_every_waiting_caller(tmp_path: Path) -> None:
    store = SQLiteStateStore(tmp_path / "s.db")
    store.files.path.unlink()  # the database was deleted under the service: writes must fail, not vanish
    with ThreadPoolExecutor(4) as pool:
        outcomes = [f.exception(5) for f in [pool.submit(store.add_events, [event(i)]) for i in range(4)]]
    assert all(isinstance(e, StateStoreError) for e in outcomes)
