"""Idempotency keys expire: a redelivery within the retention window is a duplicate, the keys do not grow forever."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from rankstack.events import Event
from rankstack.state import RedisStateStore, SQLiteStateStore
from rankstack.state.shared import DEFAULT_RETENTION_S


def click(eid: str) -> Event:
    """One click."""
    return Event(event_id=eid, user_id="u", item_id="i", event="click", timestamp=1e9)


def test_sqlite_remembers_an_event_id_for_the_retention_window_then_forgets_it(tmp_path: Path) -> None:
    store = SQLiteStateStore(tmp_path / "s.db", retention_s=3_600)
    assert store.add_events([click("e1")]) == 1
    assert store.prune_expired(time.time() + 3_500) == 0
    assert store.add_events([click("e1")]) == 0  # within the window: a duplicate
    assert store.prune_expired(time.time() + 3_700) == 1
    assert store.stored_event_ids(["e1"]) == set()
    assert store.add_events([click("e1")]) == 1  # after it: stored again


def test_sqlite_prunes_while_it_ingests(tmp_path: Path) -> None:
    store = SQLiteStateStore(tmp_path / "s.db", retention_s=0.05)
    store.add_events([click("old")])
    time.sleep(0.1)
    store._pruned_at = 0.0  # a prune is due (every 10 minutes)
    store.add_events([click("new")])
    assert store.stored_event_ids(["old", "new"]) == {"new"}


def test_sqlite_keeps_everything_without_a_retention(tmp_path: Path) -> None:
    store = SQLiteStateStore(tmp_path / "s.db", retention_s=None)
    store.add_events([click("e1")])
    assert store.prune_expired(time.time() + 1e9) == 0 and store.stored_event_ids(["e1"]) == {"e1"}


def test_an_older_sqlite_store_gets_arrival_times_from_its_event_times(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    conn = sqlite3.connect(db)
    conn.executescript("CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL UNIQUE,"
                       " user_id TEXT NOT NULL, item_id TEXT NOT NULL, event TEXT NOT NULL, ts REAL NOT NULL,"
                       " request_id TEXT, value REAL, propensity REAL);"
                       "INSERT INTO events (event_id, user_id, item_id, event, ts) VALUES ('a', 'u', 'i', 'click', 5);")
    conn.close()
    store = SQLiteStateStore(db)
    assert store.recent_items("u", 5) == ["i"]
    assert store.prune_expired(5 + DEFAULT_RETENTION_S + 1) == 1


def test_redis_event_keys_expire_after_the_retention_window(redis_server: Any) -> None:
    store = RedisStateStore(redis_server.url, retention_s=3_600)
    store.add_events([click("e1")])
    assert 3_590 <= store._client.ttl("rankstack:e:e1") <= 3_600
    assert store.add_events([click("e1")]) == 0
    forever = RedisStateStore(redis_server.url, prefix="other:", retention_s=None)
    forever.add_events([click("e1")])
    assert forever._client.ttl("other:e:e1") == -1  # no expiry
