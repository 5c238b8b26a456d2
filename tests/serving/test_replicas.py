"""Two ``rankstack serve`` replicas on loopback sharing one Redis (the compose / Kubernetes layout of
docs/distributed.md): an event posted to one is used by the other, and ``kill -9`` of a replica while events stream
in loses no acknowledged event."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
from server_process import ServerProcess
from serving_fakes import click, write_fake_artifact

from rankstack.state import RedisStateStore

WRITERS = 3
BATCH = 5


def _replicas(tmp_path: Path, redis_url: str) -> tuple[ServerProcess, ServerProcess]:
    artifact = write_fake_artifact(tmp_path / "v1")
    return (ServerProcess(artifact, redis_url, tmp_path / "a.log"),
            ServerProcess(artifact, redis_url, tmp_path / "b.log"))


def _slate(server: ServerProcess, user: str) -> list[str]:
    response = httpx.post(server.url + "/v1/recommend", json={"user_id": user, "k": 5}, timeout=5)
    assert response.status_code == 200, response.text
    return [item["item_id"] for item in response.json()["items"]]


def test_an_event_posted_to_one_replica_is_used_by_the_other(tmp_path: Path, redis_server: Any) -> None:
    a, b = _replicas(tmp_path, redis_server.url)
    try:
        a.start()
        b.start()
        assert _slate(b, "u7")[0] == "i0"
        ack = httpx.post(a.url + "/v1/events", json={"events": [click("e1", user="u7", item="i0"),
                                                                click("e2", user="u7", item="i1")]}, timeout=5)
        assert ack.status_code == 200 and ack.json()["new"] == 2
        assert _slate(b, "u7")[:3] == ["i2", "i3", "i4"]  # b reads the clicks a stored: recent items are left out
        again = httpx.post(b.url + "/v1/events", json={"events": [click("e1", user="u7", item="i0")]}, timeout=5)
        assert again.json()["duplicates"] == 1  # idempotent across replicas: one store of event ids
    finally:
        a.stop()
        b.stop()


def test_killing_a_replica_loses_no_acknowledged_event(tmp_path: Path, redis_server: Any) -> None:
    a, b = _replicas(tmp_path, redis_server.url)
    acked: list[list[str]] = [[] for _ in range(WRITERS)]
    stop = threading.Event()

    def writer(w: int) -> None:
        """Post batches to replica a, and to b once a is gone (a load balancer's retry)."""
        with httpx.Client(timeout=5) as http:
            for n in range(1_000_000):
                if stop.is_set():
                    return
                ids = [f"w{w}-b{n}-e{i}" for i in range(BATCH)]
                body = {"events": [click(eid, user=f"u{w}", item=f"i{n % 40}") for eid in ids]}
                for server in (a, b):
                    try:
                        response = http.post(server.url + "/v1/events", json=body)
                    except httpx.HTTPError:
                        continue  # not acknowledged: retried on the other replica
                    if response.status_code == 200:
                        acked[w].extend(ids)
                        break

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
    try:
        a.start()
        b.start()
        for t in threads:
            t.start()
        deadline = time.monotonic() + 20
        while sum(map(len, acked)) < 150 and time.monotonic() < deadline:
            time.sleep(0.01)
        a.kill9()
        before = sum(map(len, acked))
        deadline = time.monotonic() + 20
        while sum(map(len, acked)) < before + 50 and time.monotonic() < deadline:  # b takes over
            time.sleep(0.01)
        stop.set()
        for t in threads:
            t.join(10)
        acknowledged = [eid for ids in acked for eid in ids]
        assert len(acknowledged) >= before + 50 >= 200
        store = RedisStateStore.from_url(redis_server.url)
        assert store.stored_event_ids(acknowledged) == set(acknowledged)
        store.close()
        replay = httpx.post(b.url + "/v1/events", json={"events": [click(eid) for eid in acknowledged[:BATCH]]},
                            timeout=5).json()
        assert replay["duplicates"] == BATCH and replay["new"] == 0
    finally:
        stop.set()
        a.stop()
        b.stop()
