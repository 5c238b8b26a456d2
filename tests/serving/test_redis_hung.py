"""Redis stopped with SIGSTOP (it accepts connections and never answers): the service stays quick, then recovers."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from server_process import ServerProcess
from serving_fakes import write_fake_artifact

DEADLINE_S = 0.1  # the server's default --deadline-ms
MARGIN_S = 0.15  # scheduling slack on a busy 2-core box


def timed(http: httpx.Client, method: str, path: str, **kwargs: Any) -> tuple[httpx.Response, float]:
    """A response and its wall time in seconds."""
    t0 = time.perf_counter()
    response = http.request(method, path, **kwargs)
    return response, time.perf_counter() - t0


def test_a_hung_redis_costs_a_request_no_more_than_its_deadline(tmp_path: Path, redis_server: Any) -> None:
    server = ServerProcess(write_fake_artifact(tmp_path / "v1"), redis_server.url, tmp_path / "server.log")
    server.start()
    stop = threading.Event()
    recommend_times: list[float] = []
    statuses: list[str] = []

    def load() -> None:  # steady recommend traffic: with the loop batcher it shares the event loop with /healthz
        with httpx.Client(base_url=server.url, timeout=10) as http:
            while not stop.is_set():
                r, seconds = timed(http, "POST", "/v1/recommend", json={"user_id": "u1", "k": 3})
                recommend_times.append(seconds)
                statuses.append(f"{r.status_code}/{r.json().get('stages', {}).get('state', '-')}")

    assert redis_server.proc is not None
    thread = threading.Thread(target=load)
    try:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            assert http.post("/v1/recommend", json={"user_id": "u1", "k": 3}).json()["stages"]["state"] == "ran"
            os.kill(redis_server.proc.pid, signal.SIGSTOP)
            thread.start()
            health = []
            for _ in range(40):  # 4 s: several breaker probes (after 1 s, then 2 s)
                response, seconds = timed(http, "GET", "/healthz")
                assert response.status_code == 200
                health.append(seconds)
                time.sleep(0.1)
            stop.set()
            thread.join(10)
            assert max(health) < 0.1, sorted(health)[-5:]
            assert statuses and all(s == "200/degraded" for s in statuses[1:]), statuses[:10]
            assert max(recommend_times) < DEADLINE_S + MARGIN_S, sorted(recommend_times)[-5:]
            assert len(recommend_times) > 100  # throughput did not collapse (it was ~2 requests/s)
            os.kill(redis_server.proc.pid, signal.SIGCONT)
            recovered = False
            for _ in range(100):  # the breaker's next probe finds it (pause at most 4 s by now)
                body = http.post("/v1/recommend", json={"user_id": "u1", "k": 3}).json()
                if body["stages"]["state"] == "ran":
                    recovered = True
                    break
                time.sleep(0.1)
            assert recovered, body
            assert http.get("/readyz").status_code == 200
    finally:
        stop.set()
        if redis_server.proc is not None:
            os.kill(redis_server.proc.pid, signal.SIGCONT)
        server.stop()
