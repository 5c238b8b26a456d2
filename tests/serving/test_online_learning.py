"""Online learning in the service: events posted to ``/v1/events`` move the served policy's state, a hung state
store never stalls ``/v1/recommend``, and the learned state survives ``kill -9`` and restarts and is identical
across workers."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from server_process import ServerProcess

from rankstack.pipeline.pipeline import Pipeline
from rankstack.serving import ServiceSettings, create_app
from rankstack.serving.loaders import DEFAULT_LOADER
from rankstack.state import SQLiteStateStore
from rankstack.testing.artifacts import tiny_pipeline_artifact

FAST = {"sync_every_s": 0.05, "checkpoint_every_s": 0.2}


def learning_artifact(out: Path, policy: str = "linucb") -> Path:
    """The tiny popular + item-kNN pipeline (``rankstack.testing.artifacts``) with ``policy`` exploring, saved."""
    return tiny_pipeline_artifact(out, exploration={"policy": policy, "pool": 10, "learning": {"dim": 4, **FAST}},
                                  version="online-0001")


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The LinUCB artifact."""
    return learning_artifact(tmp_path_factory.mktemp("online") / "online-0001")


def feedback(http: Any, rounds: int, tag: str) -> int:
    """Serve ``rounds`` slates and post their impressions, with clicks on the user's taste group; returns events."""
    posted = 0
    for r in range(rounds):
        user = f"user{r % 40}"
        slate = http.post("/v1/recommend", json={"user_id": user, "k": 3, "request_id": f"{tag}-{r}"}).json()
        events = []
        for n, item in enumerate(slate["items"]):
            events.append({"event_id": f"{tag}-{r}-{n}-i", "user_id": user, "item_id": item["item_id"],
                           "event": "impression", "request_id": slate["request_id"],
                           "propensity": item["propensity"]})
            if int(item["item_id"][4:]) % 3 == r % 40 % 3:
                events.append({"event_id": f"{tag}-{r}-{n}-c", "user_id": user, "item_id": item["item_id"],
                               "event": "click", "request_id": slate["request_id"]})
        assert http.post("/v1/events", json={"events": events}).status_code == 200
        posted += len(events)
    return posted


def wait_for(check: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_posted_events_move_the_served_state(artifact: Path, tmp_path: Path) -> None:
    store = SQLiteStateStore(tmp_path / "state.db")
    settings = ServiceSettings(artifact=artifact, state_retry_s=0)
    with TestClient(create_app(Pipeline.load, store, settings)) as http:
        before = http.get("/v1/policy").json()
        assert before["policy"] == "linucb" and before["events"] == 0
        posted = feedback(http, 20, "a")
        wait_for(lambda: http.get("/v1/policy").json()["events"] == posted)
        after = http.get("/v1/policy").json()
        assert after["digest"] != before["digest"] and after["impressions"] == 60
    assert store.read_policy_state(after["key"]) is not None  # the last checkpoint, saved at shutdown
    store.close()


class HungLog:
    """A SQLite store whose feedback-log reads and checkpoint writes hang until released."""

    def __init__(self, store: SQLiteStateStore) -> None:
        self.store, self.release = store, threading.Event()
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def _hang(self) -> None:
        self.calls += 1
        self.release.wait(30)

    def events_after(self, cursor: int, limit: int) -> Any:
        self._hang()
        return self.store.events_after(cursor, limit)

    def read_policy_state(self, key: str) -> Any:
        self._hang()
        return self.store.read_policy_state(key)

    def write_policy_state(self, key: str, cursor: int, state: bytes) -> bool:
        self._hang()
        return self.store.write_policy_state(key, cursor, state)


def test_a_hung_store_never_stalls_recommendations(artifact: Path, tmp_path: Path) -> None:
    hung = HungLog(SQLiteStateStore(tmp_path / "state.db"))
    settings = ServiceSettings(artifact=artifact, state_retry_s=0)
    try:
        with TestClient(create_app(Pipeline.load, hung, settings)) as http:
            wait_for(lambda: hung.calls >= 1)  # the learner is stuck on the store
            for r in range(30):
                started = time.perf_counter()
                response = http.post("/v1/recommend", json={"user_id": f"user{r}", "k": 3})
                assert response.status_code == 200 and time.perf_counter() - started < 1.0
            assert http.get("/v1/policy").json()["cursor"] == 0
            hung.release.set()
    finally:
        hung.release.set()
        hung.store.close()


def policies(server: ServerProcess, workers: int) -> dict[str, dict[str, Any]]:
    """/v1/policy of each worker (new connections until every worker answered)."""
    seen: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + 30
    while len(seen) < workers and time.monotonic() < deadline:
        response = httpx.get(server.url + "/v1/policy", timeout=5)
        seen[response.headers.get("x-rankstack-worker", "single")] = response.json()
    assert len(seen) == workers
    return seen


def converged(server: ServerProcess, workers: int, events: int) -> dict[str, Any]:
    """Wait until every worker has folded ``events`` events; their (equal) state."""
    states: dict[str, dict[str, Any]] = {}

    def check() -> bool:
        nonlocal states
        states = policies(server, workers)
        return all(s["events"] == events for s in states.values())

    wait_for(check, 60)
    digests = {s["digest"] for s in states.values()}
    assert len(digests) == 1, states
    return next(iter(states.values()))


@pytest.fixture
def served(artifact: Path, tmp_path: Path) -> Iterator[Callable[[int], ServerProcess]]:
    """Start real servers (``rankstack serve``) over the artifact and one SQLite file; stopped at the end."""
    started: list[ServerProcess] = []

    def start(workers: int) -> ServerProcess:
        server = ServerProcess(artifact, f"sqlite:{tmp_path / 'state.db'}", tmp_path / "server.log",
                               loader=DEFAULT_LOADER, workers=workers)
        server.start(timeout_s=120.0)  # two workers importing torch on a loaded 2-core CI box
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def test_state_is_identical_across_workers_and_survives_kill_9_and_restarts(
        served: Callable[[int], ServerProcess]) -> None:
    from rankstack.serving.fanout import pid_alive

    server = served(2)
    with httpx.Client(base_url=server.url, timeout=10) as http:
        posted = feedback(http, 15, "a")
    first = converged(server, 2, posted)
    workers = {int(pid) for pid in policies(server, 2)}
    victim = min(workers)
    os.kill(victim, signal.SIGKILL)  # the parent replaces it; the replacement resumes from checkpoint + log
    wait_for(lambda: victim not in server.worker_pids(), 60)  # the replacement loads torch and the artifact
    assert converged(server, 2, posted)["digest"] == first["digest"]
    with httpx.Client(base_url=server.url, timeout=10) as http:
        posted += feedback(http, 10, "b")
    second = converged(server, 2, posted)
    workers = {int(pid) for pid in policies(server, 2)}
    server.kill9()  # the whole service; its orphaned workers notice and stop
    wait_for(lambda: not any(pid_alive(pid) for pid in workers))
    assert converged(served(1), 1, posted)["digest"] == second["digest"]  # a restart resumes the same state

def test_two_services_sharing_one_redis_learn_the_same_state(artifact: Path, redis_server: Any) -> None:
    from rankstack.state import RedisStateStore

    stores = [RedisStateStore(redis_server.url, prefix="online:") for _ in range(2)]
    settings = ServiceSettings(artifact=artifact, state_retry_s=0)
    try:
        with TestClient(create_app(Pipeline.load, stores[0], settings)) as a, \
                TestClient(create_app(Pipeline.load, stores[1], settings)) as b:
            posted = feedback(a, 12, "r")  # every event goes to service a
            wait_for(lambda: a.get("/v1/policy").json()["events"] == posted == b.get("/v1/policy").json()["events"])
            assert a.get("/v1/policy").json()["digest"] == b.get("/v1/policy").json()["digest"]
    finally:
        for store in stores:
            store.close()


def test_the_service_module_does_not_import_torch() -> None:
    """The learner is imported by the app; a service over a non-pipeline recommender must not pay for torch."""
    import subprocess
    import sys

    code = "import sys, rankstack.serving.app; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
