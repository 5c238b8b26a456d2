"""The SQLite store notices its files deleted, replaced or truncated under it, and unwritable ones at open."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rankstack.events import Event
from rankstack.state import SQLiteStateStore, StateStoreError


def click(eid: str) -> Event:
    """One click event."""
    return Event(event_id=eid, user_id="u", item_id="i", event="click", timestamp=1e9)


def remove_all(db: Path) -> None:
    """``rm state.db*``."""
    for path in db.parent.glob(db.name + "*"):
        path.unlink()


def test_a_deleted_database_refuses_writes_and_reads_and_is_not_healthy(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    store = SQLiteStateStore(db)
    assert store.add_events([click("e1")]) == 1 and store.healthy()
    remove_all(db)
    with pytest.raises(StateStoreError, match="was deleted"):
        store.add_events([click("e2")])
    with pytest.raises(StateStoreError, match="was deleted"):
        store.recent_items("u", 5)
    assert not store.healthy() and "was deleted" in (store.problem() or "")


def test_a_replaced_database_is_noticed(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    store = SQLiteStateStore(db)
    store.add_events([click("e1")])
    shutil.copy(db, tmp_path / "copy.db")
    os.replace(tmp_path / "copy.db", db)
    assert "was replaced" in (store.problem() or "")
    with pytest.raises(StateStoreError, match="was replaced"):
        store.add_events([click("e2")])


def test_readiness_commits_a_probe_row(tmp_path: Path) -> None:
    store = SQLiteStateStore(tmp_path / "state.db")
    store.healthy()
    first = store._conn.execute("SELECT checked_at FROM health").fetchone()[0]
    store.healthy()
    assert store._conn.execute("SELECT checked_at FROM health").fetchone()[0] >= first
    store._conn.execute("CREATE TRIGGER no_writes BEFORE UPDATE ON health BEGIN SELECT RAISE(FAIL, 'disk full'); END")
    store._conn.execute("CREATE TRIGGER no_inserts BEFORE INSERT ON health BEGIN SELECT RAISE(FAIL, 'disk full'); END")
    assert "disk full" in (store.problem() or "")  # SELECT 1 would still answer


def test_a_truncated_shm_file_is_noticed_without_sigbus(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import os
        from rankstack.events import Event
        from rankstack.state import SQLiteStateStore, StateStoreError
        store = SQLiteStateStore({str(tmp_path / "state.db")!r})
        store.add_events([Event(event_id="e1", user_id="u", item_id="i", event="click")])
        os.truncate({str(tmp_path / "state.db-shm")!r}, 0)
        print("healthy", store.healthy())
        for call in (lambda: store.add_events([Event(event_id="e2", user_id="u", item_id="i", event="click")]),
                     lambda: store.recent_items("u", 5)):
            try:
                call()
            except StateStoreError as exc:
                print("refused", "truncated" in str(exc))
        store.close()
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]  # -7: SIGBUS
    assert done.stdout.split() == ["healthy", "False", "refused", "True", "refused", "True"]
    assert SQLiteStateStore(tmp_path / "state.db").stored_event_ids(["e1", "e2"]) == {"e1"}


def test_an_unusable_shm_file_is_refused_at_open(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    SQLiteStateStore(db).close()
    (tmp_path / "state.db-shm").mkdir()
    with pytest.raises(StateStoreError, match=r"state\.db-shm is not a regular file"):
        SQLiteStateStore(db)


def test_an_unwritable_shm_file_is_refused_at_open(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    SQLiteStateStore(db).close()
    shm = tmp_path / "state.db-shm"
    shm.write_bytes(b"\0" * 32768)
    shm.chmod(0o444)
    immutable = os.geteuid() == 0  # root ignores file modes: make it immutable instead, where the filesystem can
    if immutable and subprocess.run(["chattr", "+i", str(shm)], capture_output=True).returncode != 0:
        pytest.skip("running as root on a filesystem without chattr +i: cannot make a file unwritable")
    try:
        with pytest.raises(StateStoreError, match="cannot be opened for writing"):
            SQLiteStateStore(db)
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(shm)], check=True)
