"""The feedback log and policy checkpoints of both built-in stores: every new event once, in log order, pageable
by cursor; a checkpoint is kept only when it is further along than the stored one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rankstack.events import Event
from rankstack.state import RedisStateStore, SQLiteStateStore
from rankstack.state.feedback_log import FeedbackLog, feedback_log


@pytest.fixture(params=["sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A fresh store of each kind."""
    if request.param == "sqlite":
        made: Any = SQLiteStateStore(tmp_path / "state.db")
    else:
        made = RedisStateStore(request.getfixturevalue("redis_server").url, prefix="fl:")
    yield made
    made.close()


def event(n: int, kind: str = "impression") -> Event:
    return Event(event_id=f"e{n}", user_id=f"u{n % 3}", item_id=f"i{n % 5}", event=kind)  # type: ignore[arg-type]


def test_the_log_holds_each_new_event_once_in_order(store: Any) -> None:
    assert isinstance(store, FeedbackLog) and feedback_log(store) is store
    store.add_events([event(n) for n in range(5)])
    store.add_events([event(n) for n in range(3, 9)] + [event(9, "click")])  # 3 and 4 are duplicates
    everything = store.events_after(0, 100)
    assert [(e.user_id, e.item_id, e.event) for e in everything] == \
        [(f"u{n % 3}", f"i{n % 5}", "click" if n == 9 else "impression") for n in range(10)]
    seqs = [e.seq for e in everything]
    assert seqs == sorted(seqs) and len(set(seqs)) == 10
    paged, cursor = [], 0
    while page := store.events_after(cursor, 3):
        assert len(page) <= 3
        paged += page
        cursor = page[-1].seq
    assert paged == everything
    assert store.events_after(everything[-1].seq, 10) == []


def test_a_checkpoint_is_kept_only_when_further_along(store: Any) -> None:
    assert store.read_policy_state("k") is None
    assert store.write_policy_state("k", 10, b"\x00ten\xff")
    assert not store.write_policy_state("k", 5, b"five")
    assert not store.write_policy_state("k", 10, b"again")
    assert store.read_policy_state("k") == b"\x00ten\xff"
    assert store.write_policy_state("k", 11, b"eleven")
    assert store.read_policy_state("k") == b"eleven" and store.read_policy_state("other") is None
