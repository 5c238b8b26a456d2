"""``kill -9`` of the real server (uvicorn, SQLite state) during concurrent ingestion loses no acknowledged event."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
from server_process import ServerProcess
from serving_fakes import click, write_fake_artifact

from rankstack.state import SQLiteStateStore

WRITERS = 4
BATCH = 10


def test_acknowledged_events_survive_kill_9(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    server = ServerProcess(write_fake_artifact(tmp_path / "v1"), f"sqlite:{db}", tmp_path / "server.log")
    server.start()
    acked: list[list[str]] = [[] for _ in range(WRITERS)]
    stop = threading.Event()

    def writer(w: int) -> None:
        with httpx.Client(base_url=server.url, timeout=5) as http:
            for n in range(1_000_000):
                if stop.is_set():
                    return
                ids = [f"w{w}-b{n}-e{i}" for i in range(BATCH)]
                try:
                    response = http.post("/v1/events", json={"events": [click(eid, user=f"u{w}") for eid in ids]})
                except httpx.HTTPError:
                    return  # the server died mid-request: this batch was never acknowledged
                if response.status_code == 200:
                    acked[w].extend(ids)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 20
        while sum(map(len, acked)) < 300 and time.monotonic() < deadline:
            time.sleep(0.01)
        server.kill9()
        stop.set()
        for t in threads:
            t.join(10)
        acknowledged = [eid for ids in acked for eid in ids]
        assert len(acknowledged) >= 300

        server.start()  # restarts on the same SQLite file (WAL recovery)
        store = SQLiteStateStore(db)
        assert store.stored_event_ids(acknowledged) == set(acknowledged)
        replay = httpx.post(server.url + "/v1/events",
                            json={"events": [click(eid) for eid in acknowledged[:BATCH]]}, timeout=5).json()
        assert replay["duplicates"] == BATCH and replay["new"] == 0
        store.close()
    finally:
        stop.set()
        server.stop()
