"""What is specific to each store: durability settings, failure as ``StateStoreError``, opening by URL."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from rankstack.errors import ConfigError
from rankstack.events import Event
from rankstack.pipeline.components import open_state
from rankstack.state import RedisStateStore, SQLiteStateStore, StateStoreError

EVENT = Event(event_id="e1", user_id="u", item_id="i", event="click", timestamp=1.0)


def test_sqlite_uses_wal_and_full_sync(tmp_path: Path) -> None:
    store = SQLiteStateStore(tmp_path / "s.db")
    store.add_events([EVENT])
    conn = sqlite3.connect(tmp_path / "s.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("SELECT event_id FROM events").fetchall() == [("e1",)]


def test_sqlite_survives_reopen(tmp_path: Path) -> None:
    SQLiteStateStore(tmp_path / "s.db").add_events([EVENT])
    assert SQLiteStateStore(tmp_path / "s.db").recent_items("u", 5) == ["i"]


def _click(event_id: str, item: str = "i") -> Event:
    return Event(event_id=event_id, user_id="u", item_id=item, event="click", timestamp=1.0)


def test_sqlite_stores_several_posts_in_one_transaction(tmp_path: Path) -> None:
    store = SQLiteStateStore(tmp_path / "s.db")
    store.add_events([_click("e0")])
    assert store.add_event_batches([[_click("e1"), _click("e0")], [_click("e2")], [_click("e1")]]) == [1, 1, 0]
    assert store.stored_event_ids(["e0", "e1", "e2"]) == {"e0", "e1", "e2"}


def test_sqlite_posts_written_together_are_stored_all_or_none(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from rankstack.state import sqlite as sqlite_store

    store = SQLiteStateStore(tmp_path / "s.db")
    increment = sqlite_store.bandit_increment

    def failing_on_boom(event: Event) -> tuple[float, float]:
        if event.item_id == "boom":
            raise sqlite3.OperationalError("disk I/O error")
        return increment(event)

    monkeypatch.setattr(sqlite_store, "bandit_increment", failing_on_boom)
    with pytest.raises(StateStoreError, match="disk I/O error"):
        store.add_event_batches([[_click("e1")], [_click("e2", "boom")]])
    assert store.stored_event_ids(["e1", "e2"]) == set()
    assert store.add_event_batches([[_click("e1")]]) == [1]  # the store still writes


def test_sqlite_errors_are_state_store_errors(tmp_path: Path) -> None:
    store = SQLiteStateStore(tmp_path / "s.db")
    store.close()
    with pytest.raises(StateStoreError, match="SQLite state store"):
        store.add_events([EVENT])
    assert not store.healthy()


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_posts_written_together_get_each_ones_new_count_and_history_order(kind: str, tmp_path: Path,
                                                                          request: pytest.FixtureRequest) -> None:
    store: Any = (SQLiteStateStore(tmp_path / "s.db") if kind == "sqlite" else
                  RedisStateStore(request.getfixturevalue("redis_server").url))
    store.add_events([_click("e0", "a")])
    posts = [[_click("e1", "b"), _click("e0", "a")], [], [_click("e2", "c")], [_click("e1", "b")]]
    assert store.add_event_batches(posts) == [1, 0, 1, 0]
    assert store.stored_event_ids(["e0", "e1", "e2", "e3"]) == {"e0", "e1", "e2"}
    assert store.recent_items("u", 5) == ["a", "b", "c"]
    assert store.add_event_batches([]) == []
    store.close()


def test_redis_down_fails_every_post_written_together(unused_port: int) -> None:
    store = RedisStateStore(f"redis://127.0.0.1:{unused_port}/0", timeout_s=0.2)
    with pytest.raises(StateStoreError, match=str(unused_port)):
        store.add_event_batches([[_click("e1")], [_click("e2")]])


def test_redis_down_raises_state_store_error(unused_port: int) -> None:
    store = RedisStateStore(f"redis://127.0.0.1:{unused_port}/0", timeout_s=0.2)
    with pytest.raises(StateStoreError, match="Redis state store"):
        store.add_events([EVENT])
    with pytest.raises(StateStoreError):
        store.recent_items("u", 3)
    assert not store.healthy()


def test_redis_durability_check(redis_server: Any) -> None:
    store = RedisStateStore(redis_server.url)
    assert store.durability_problem() is None
    store._client.config_set("appendfsync", "everysec")
    problem = store.durability_problem()
    assert problem is not None and "appendfsync always" in problem


def test_redis_acknowledged_events_survive_a_crash(redis_server: Any) -> None:
    store = RedisStateStore(redis_server.url)
    ids = [f"e{i}" for i in range(200)]
    for i in range(0, 200, 20):
        store.add_events([Event(event_id=eid, user_id="u", item_id="i", event="click") for eid in ids[i : i + 20]])
    redis_server.kill()
    redis_server.start()
    assert RedisStateStore(redis_server.url).stored_event_ids(ids) == set(ids)


def test_redis_history_is_capped(redis_server: Any) -> None:
    store = RedisStateStore(redis_server.url, max_history=3)
    store.add_events([Event(event_id=str(i), user_id="u", item_id=f"i{i}", event="click", timestamp=float(i))
                      for i in range(6)])
    assert store.recent_items("u", 10) == ["i3", "i4", "i5"]


@pytest.mark.parametrize(("spec", "kind"), [("sqlite:{tmp}/a.db", SQLiteStateStore),
                                            ("redis://127.0.0.1:1/0", RedisStateStore)])
def test_open_state(spec: str, kind: type, tmp_path: Path) -> None:
    assert isinstance(open_state(spec.format(tmp=tmp_path)), kind)


@pytest.mark.parametrize("spec", ["sqlite:", "postgres://x", "state.db"])
def test_open_state_rejects_bad_specs(spec: str) -> None:
    with pytest.raises(ConfigError, match="sqlite"):
        open_state(spec)
