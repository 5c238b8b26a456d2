"""Redis stopped mid-load: recommend keeps answering (degraded, never 5xx), events get 503; restarted: recovery."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from server_process import ServerProcess
from serving_fakes import click, write_fake_artifact

from rankstack.state import RedisStateStore


def test_service_degrades_while_redis_is_down_and_recovers(tmp_path: Path, redis_server: Any) -> None:
    server = ServerProcess(write_fake_artifact(tmp_path / "v1"), redis_server.url, tmp_path / "server.log")
    server.start()
    phase = {"name": "up"}
    seen: Counter[tuple[str, str, str]] = Counter()
    acked: list[str] = []
    stop = threading.Event()

    def recommender_load() -> None:
        with httpx.Client(base_url=server.url, timeout=5) as http:
            while not stop.is_set():
                r = http.post("/v1/recommend", json={"user_id": "u1", "k": 3})
                state = r.json().get("stages", {}).get("state", "-") if r.status_code == 200 else "-"
                seen[(phase["name"], "recommend", f"{r.status_code}/{state}")] += 1

    def event_load() -> None:
        with httpx.Client(base_url=server.url, timeout=5) as http:
            for n in range(1_000_000):
                if stop.is_set():
                    return
                ids = [f"b{n}-{i}" for i in range(5)]
                r = http.post("/v1/events", json={"events": [click(eid, item=f"i{n % 40}") for eid in ids]})
                seen[(phase["name"], "events", str(r.status_code))] += 1
                if r.status_code == 200:
                    acked.extend(ids)
                time.sleep(0.005)

    threads = [threading.Thread(target=recommender_load), threading.Thread(target=event_load)]
    try:
        for t in threads:
            t.start()
        time.sleep(1.0)
        phase["name"] = "down"
        redis_server.kill()
        time.sleep(1.5)
        phase["name"] = "restarting"
        redis_server.start()
        time.sleep(1.5)  # > the 1 s state retry pause: the service must have found the store again
        phase["name"] = "recovered"
        time.sleep(1.0)
        stop.set()
        for t in threads:
            t.join(10)
        assert server.proc is not None and server.proc.poll() is None, "the server crashed"
        statuses = {(p, what, s) for (p, what, s) in seen}
        assert not any(s.startswith("5") for (_, what, s) in statuses if what == "recommend"), seen
        assert not any(s.startswith("5") and s != "503" for (_, _, s) in statuses), seen
        assert ("down", "recommend", "200/degraded") in statuses, seen
        assert ("down", "events", "503") in statuses, seen
        assert ("recovered", "recommend", "200/ran") in statuses, seen
        assert ("recovered", "events", "200") in statuses, seen
        assert httpx.get(server.url + "/readyz").status_code == 200
        fresh = httpx.post(server.url + "/v1/recommend", json={"user_id": "u1", "k": 3}).json()
        assert fresh["stages"]["state"] == "ran" and fresh["fallback"] is None
        assert RedisStateStore(redis_server.url).stored_event_ids(acked) == set(acked)
    finally:
        stop.set()
        server.stop()
