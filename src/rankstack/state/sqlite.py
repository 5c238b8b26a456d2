"""Embedded online state in one SQLite file: WAL mode, ``synchronous=FULL``, idempotent on ``event_id``.

Durability: ``add_events`` returns only after the transaction holding its batch has committed (batches posted
by concurrent threads share one transaction: ``rankstack.state.group_commit``); with
WAL and ``synchronous=FULL`` SQLite fsyncs the write-ahead log on every commit, so an acknowledged event
survives ``kill -9`` of the process and a power cut. (``NORMAL`` would survive ``kill -9`` but may lose
the last commits on power loss, so we pay the one fsync per transaction.)

Retention: events are kept ``retention_s`` (default 30 days) after they arrived, then pruned (at most every
10 minutes, by ``add_events``), their ids with them: a redelivery within that window is a duplicate.

An open connection keeps writing to its files after they are deleted or replaced on disk (``rm state.db*``),
so commits would land in a file no restart can find, and a truncated ``-shm`` file kills the process with
SIGBUS on its next access. ``DatabaseFiles`` notices both before every write and read; ``healthy`` also
commits a probe row, so readiness means an acknowledged write would be durable.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rankstack.errors import ConfigError
from rankstack.events import Event
from rankstack.state.feedback_log import LoggedEvent
from rankstack.state.group_commit import GroupCommit
from rankstack.state.shared import DEFAULT_RETENTION_S, StateStoreError, with_timestamps
from rankstack.state.sqlite_files import DatabaseFiles

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    event TEXT NOT NULL,
    ts REAL NOT NULL,
    request_id TEXT,
    value REAL,
    propensity REAL,
    received REAL
);
CREATE INDEX IF NOT EXISTS events_by_user ON events (user_id, event, ts);
CREATE TABLE IF NOT EXISTS health (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    checked_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS bandit (
    arm_id TEXT PRIMARY KEY,
    pulls REAL NOT NULL DEFAULT 0,
    reward REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS policy_state (
    key TEXT PRIMARY KEY,
    cursor INTEGER NOT NULL,
    state BLOB NOT NULL,
    written REAL NOT NULL
);
"""

# Stores made before the retention policy lack ``received`` (arrival time): add it, taking the event time.
_MIGRATE_RECEIVED = """
ALTER TABLE events ADD COLUMN received REAL;
UPDATE events SET received = ts;
"""
_PRUNE = "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE received < ? LIMIT ?)"
PRUNE_EVERY_S = 600.0
PRUNE_ROWS = 10_000  # most rows one prune deletes (bounds the pause of the batch that runs it)

_POLICY_UPDATE = """
INSERT INTO policy_state (key, cursor, state, written) VALUES (?, ?, ?, ?)
ON CONFLICT (key) DO UPDATE SET cursor = excluded.cursor, state = excluded.state, written = excluded.written
WHERE excluded.cursor > policy_state.cursor
"""

_BANDIT_UPDATE = """
INSERT INTO bandit (arm_id, pulls, reward) VALUES (?, ?, ?)
ON CONFLICT (arm_id) DO UPDATE SET pulls = pulls + excluded.pulls, reward = reward + excluded.reward
"""


def bandit_increment(event: Event) -> tuple[float, float]:
    """(pulls, reward) an event adds to its item's arm: an impression is a pull, a click a unit of reward."""
    return (1.0, 0.0) if event.event == "impression" else (0.0, 1.0) if event.event == "click" else (0.0, 0.0)


def _marks(values: Sequence[object]) -> str:
    """One ``?`` placeholder per value."""
    return ",".join("?" * len(values))


def _chunks(values: list[str], size: int = 500) -> list[list[str]]:
    """``values`` in pieces of at most ``size`` (SQLite limits the placeholders of one statement)."""
    return [values[i: i + size] for i in range(0, len(values), size)]


class SQLiteStateStore:
    """The embedded default ``StateStore``: one SQLite file shared by the service's threads."""

    local_reads = True  # reads are local-file work that never waits for a writer (WAL): the service may run them
    # on the request's own thread once they have been fast (``rankstack.serving.guard.BoundedCalls``)

    @classmethod
    def from_url(cls, url: str) -> SQLiteStateStore:
        """The store a ``sqlite:PATH`` (or ``sqlite://PATH``) URL names (``ConfigError`` without a path)."""
        path = url.removeprefix("sqlite:").removeprefix("//")
        if not path:
            raise ConfigError("state store 'sqlite:' needs a file path, e.g. sqlite:state/events.db")
        return cls(Path(path))

    def __init__(self, path: Path | str, *, timeout_s: float = 5.0,
                 retention_s: float | None = DEFAULT_RETENTION_S) -> None:
        self.path = Path(path)
        self.retention_s = retention_s
        self._pruned_at = 0.0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._group: GroupCommit[list[Event], int] = GroupCommit(self._write_batches)
        self.files = DatabaseFiles(self.path)
        self.files.check_companions()
        try:
            self._conn = sqlite3.connect(self.path, timeout=timeout_s, check_same_thread=False, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.executescript(_SCHEMA)
            if "received" not in {row[1] for row in self._conn.execute("PRAGMA table_info(events)")}:
                self._conn.executescript(f"BEGIN; {_MIGRATE_RECEIVED} COMMIT;")
            self._conn.execute("CREATE INDEX IF NOT EXISTS events_by_arrival ON events (received)")
            self._probe_write()
            # Reads use their own connection: under WAL they see every committed batch and never wait for the
            # writer's fsync, so a burst of events does not stall recommendations.
            self._read_conn = sqlite3.connect(self.path, timeout=timeout_s, check_same_thread=False,
                                              isolation_level=None)
            # The feedback log is read by a background learner on a third connection: its reads never queue
            # behind (or hold up) a request's reads.
            self._log_conn = sqlite3.connect(self.path, timeout=timeout_s, check_same_thread=False,
                                             isolation_level=None)
            self._log_lock = threading.Lock()
        except sqlite3.Error as exc:
            raise StateStoreError(f"SQLite state store {self.path}: {exc}") from exc
        self.files.remember()

    def _probe_write(self) -> None:
        """Commit one row to the ``health`` table (raises ``sqlite3.Error`` when writes fail)."""
        self._conn.execute("INSERT OR REPLACE INTO health (id, checked_at) VALUES (1, ?)", (time.time(),))

    def add_events(self, events: Sequence[Event]) -> int:
        """Store the batch durably; events whose ``event_id`` is known are skipped. Batches posted by concurrent
        threads meanwhile share one transaction (group commit): one fsync for all, each caller answered after it."""
        return self._group.submit(list(events))

    def add_event_batches(self, batches: Sequence[Sequence[Event]]) -> list[int]:
        """Several posts' events in one durable transaction (one fsync for all; a single writer thread cannot
        group through ``add_events``); the new events of each. If the write fails, nothing of any is stored."""
        return self._write_batches([list(events) for events in batches])

    def _write_batches(self, batches: list[list[Event]]) -> list[int]:
        """Every batch in one durable transaction; the new events of each (``GroupCommit``'s write)."""
        news = []
        with self._lock:
            self.files.check()
            try:
                cur = self._conn.cursor()
                now = time.time()
                cur.execute("BEGIN IMMEDIATE")
                for events in batches:
                    new = 0
                    for e in with_timestamps(events, now):
                        cur.execute(
                            "INSERT OR IGNORE INTO events (event_id, user_id, item_id, event, ts, request_id, value,"
                            " propensity, received) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            (e.event_id, e.user_id, e.item_id, e.event, e.timestamp, e.request_id, e.value,
                             e.propensity, now),
                        )
                        if cur.rowcount == 1:
                            new += 1
                            pulls, reward = bandit_increment(e)
                            if pulls or reward:
                                cur.execute(_BANDIT_UPDATE, (e.item_id, pulls, reward))
                    news.append(new)
                if now - self._pruned_at >= PRUNE_EVERY_S:
                    self._prune(cur, now)
                cur.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
                raise StateStoreError(f"SQLite state store {self.path}: {exc}") from exc
            self.files.check()  # deleted while we wrote: the commit went to a file nobody will open again
        return news

    def _prune(self, cur: sqlite3.Cursor, now: float) -> int:
        """Delete up to ``PRUNE_ROWS`` events that arrived over ``retention_s`` before ``now`` (ids and history)."""
        self._pruned_at = now
        if self.retention_s is None:
            return 0
        cur.execute(_PRUNE, (now - self.retention_s, PRUNE_ROWS))
        return max(cur.rowcount, 0)

    def prune_expired(self, now: float | None = None) -> int:
        """Delete events stored longer than ``retention_s`` ago now (``add_events`` does it every 10 minutes)."""
        with self._lock:
            self.files.check()
            try:
                cur = self._conn.cursor()
                cur.execute("BEGIN IMMEDIATE")
                deleted = self._prune(cur, time.time() if now is None else now)
                cur.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
                raise StateStoreError(f"SQLite state store {self.path}: {exc}") from exc
        return deleted

    def recent_items(self, user_id: str, n: int, *, events: Sequence[str] = ("click", "conversion")) -> list[str]:
        """The user's last ``n`` items with an event in ``events``, oldest first."""
        if n <= 0 or not events:
            return []
        marks = ",".join("?" * len(events))
        rows = self._query(
            f"SELECT item_id FROM events WHERE user_id = ? AND event IN ({marks}) ORDER BY ts DESC, seq DESC LIMIT ?",
            (user_id, *events, n),
        )
        return [row[0] for row in reversed(rows)]

    def exposure_counts(self, user_id: str, *, since: float, events: Sequence[str] = ("impression",)) -> dict[str, int]:
        """Item id → the user's number of ``events`` at or after ``since``."""
        if not events:
            return {}
        marks = ",".join("?" * len(events))
        rows = self._query(
            f"SELECT item_id, COUNT(*) FROM events WHERE user_id = ? AND event IN ({marks}) AND ts >= ?"
            " GROUP BY item_id",
            (user_id, *events, since),
        )
        return {item: int(count) for item, count in rows}

    def recent_items_many(self, user_ids: Sequence[str], n: int, *,
                          events: Sequence[str] = ("click", "conversion")) -> list[list[str]]:
        """``recent_items`` of each user from one query (a window over the users' rows)."""
        out: dict[str, list[str]] = {u: [] for u in user_ids}
        if n <= 0 or not events or not user_ids:
            return [[] for _ in user_ids]
        for chunk in _chunks(list(out)):
            rows = self._query(
                f"SELECT user_id, item_id FROM (SELECT user_id, item_id, ts, seq, ROW_NUMBER() OVER (PARTITION BY"
                f" user_id ORDER BY ts DESC, seq DESC) AS rn FROM events WHERE user_id IN ({_marks(chunk)})"
                f" AND event IN ({_marks(events)})) WHERE rn <= ? ORDER BY user_id, ts, seq",
                (*chunk, *events, n),
            )
            for user, item in rows:
                out[user].append(item)
        return [list(out[u]) for u in user_ids]

    def latest_times_many(self, user_ids: Sequence[str], *,
                          events: Sequence[str] = ("click", "conversion")) -> list[float | None]:
        """Each user's latest event time of a kind in ``events`` (None: no such event), from one query."""
        out: dict[str, float | None] = dict.fromkeys(user_ids)
        if not events or not user_ids:
            return [None for _ in user_ids]
        for chunk in _chunks(list(out)):
            rows = self._query(
                f"SELECT user_id, MAX(ts) FROM events WHERE user_id IN ({_marks(chunk)})"
                f" AND event IN ({_marks(events)}) GROUP BY user_id",
                (*chunk, *events),
            )
            for user, ts in rows:
                out[user] = float(ts)
        return [out[u] for u in user_ids]

    def exposure_counts_many(self, user_ids: Sequence[str], *, since: float,
                             events: Sequence[str] = ("impression",)) -> list[dict[str, int]]:
        """``exposure_counts`` of each user from one query."""
        out: dict[str, dict[str, int]] = {u: {} for u in user_ids}
        if not events or not user_ids:
            return [{} for _ in user_ids]
        for chunk in _chunks(list(out)):
            rows = self._query(
                f"SELECT user_id, item_id, COUNT(*) FROM events WHERE user_id IN ({_marks(chunk)})"
                f" AND event IN ({_marks(events)}) AND ts >= ? GROUP BY user_id, item_id",
                (*chunk, *events, since),
            )
            for user, item, count in rows:
                out[user][item] = int(count)
        return [dict(out[u]) for u in user_ids]

    def bandit_stats(self, arm_ids: Sequence[str]) -> dict[str, tuple[float, float]]:
        """Arm → (impressions, clicks) since the store was created; arms never seen get (0, 0)."""
        out = {arm: (0.0, 0.0) for arm in arm_ids}
        for start in range(0, len(arm_ids), 500):
            chunk = list(arm_ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            for arm, pulls, reward in self._query(f"SELECT arm_id, pulls, reward FROM bandit WHERE arm_id IN ({marks})",
                                                  chunk):
                out[arm] = (float(pulls), float(reward))
        return out

    def stored_event_ids(self, event_ids: Sequence[str]) -> set[str]:
        """Which of ``event_ids`` are in the store (used to audit durability)."""
        found: set[str] = set()
        for start in range(0, len(event_ids), 500):
            chunk = list(event_ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            found.update(r[0] for r in self._query(f"SELECT event_id FROM events WHERE event_id IN ({marks})", chunk))
        return found

    def events_after(self, cursor: int, limit: int) -> list[LoggedEvent]:
        """Up to ``limit`` events with ``seq`` > ``cursor`` in ``seq`` order: the feedback log. Writers commit one at
        a time and ``seq`` grows with each insert, so a position once read never gains an earlier neighbour."""
        with self._log_lock:
            self.files.check()
            try:
                rows = self._log_conn.execute(
                    "SELECT seq, user_id, item_id, event FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                    (int(cursor), int(limit))).fetchall()
            except sqlite3.Error as exc:
                raise StateStoreError(f"SQLite state store {self.path}: {exc}") from exc
        return [LoggedEvent(int(q), str(u), str(i), str(e)) for q, u, i, e in rows]

    def read_policy_state(self, key: str) -> bytes | None:
        """The latest learned-state checkpoint saved under ``key``."""
        with self._log_lock:
            self.files.check()
            try:
                row = self._log_conn.execute("SELECT state FROM policy_state WHERE key = ?", (key,)).fetchone()
            except sqlite3.Error as exc:
                raise StateStoreError(f"SQLite state store {self.path}: {exc}") from exc
        return None if row is None else bytes(row[0])

    def write_policy_state(self, key: str, cursor: int, state: bytes) -> bool:
        """Save a checkpoint taken at log position ``cursor`` unless the kept one is as far along (one transaction)."""
        with self._lock:
            self.files.check()
            try:
                cur = self._conn.execute(_POLICY_UPDATE, (key, int(cursor), sqlite3.Binary(state), time.time()))
            except sqlite3.Error as exc:
                raise StateStoreError(f"SQLite state store {self.path}: {exc}") from exc
            return cur.rowcount == 1

    def healthy(self) -> bool:
        """True when an acknowledged write would be durable: the files are the ones opened and a probe row commits."""
        return self.problem() is None

    def problem(self) -> str | None:
        """Why writes would fail or be lost (files deleted, replaced or truncated; a probe write failed), or None."""
        with self._lock:
            try:
                self.files.check()
                self._probe_write()
            except (StateStoreError, sqlite3.Error) as exc:
                return str(exc) if isinstance(exc, StateStoreError) else f"SQLite state store {self.path}: {exc}"
        return None

    def close(self) -> None:
        """Close both connections (the last one to close checkpoints the WAL)."""
        self.files.restore_shm_size()  # closing touches the shared memory: a truncated file would mean SIGBUS
        with self._read_lock:
            self._read_conn.close()
        with self._log_lock:
            self._log_conn.close()
        with self._lock:
            self._conn.close()

    def _query(self, sql: str, params: Sequence[object]) -> list[tuple[Any, ...]]:
        """Run a read on the read connection; SQLite errors become ``StateStoreError``."""
        with self._read_lock:
            self.files.check()
            try:
                return list(self._read_conn.execute(sql, tuple(params)).fetchall())
            except sqlite3.Error as exc:
                raise StateStoreError(f"SQLite state store {self.path}: {exc}") from exc
