"""``--workers 2``: two real uvicorn worker processes on one port share requests, metrics and hot reloads, and stop
together on SIGTERM."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from server_process import ServerProcess
from serving_fakes import TOKEN, write_fake_artifact

from rankstack.serving.fanout import pid_alive
from rankstack.serving.workers import worker_threads

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One two-worker server over the fake v1 artifact, admin token set, both workers up."""
    root = tmp_path_factory.mktemp("workers")
    proc = ServerProcess(write_fake_artifact(root / "v1"), f"sqlite:{root / 'state.db'}", root / "server.log",
                         workers=2, env={"RANKSTACK_ADMIN_TOKEN": TOKEN})
    proc.start()
    proc.worker_pids()
    yield proc
    proc.stop()


def recommend_many(server: ServerProcess, n: int) -> Counter[tuple[str, str]]:
    """``n`` recommends, each on a new connection: how many each (worker pid, model version) answered."""
    seen: Counter[tuple[str, str]] = Counter()
    with httpx.Client(base_url=server.url, timeout=10, limits=httpx.Limits(max_keepalive_connections=0)) as http:
        for i in range(n):
            response = http.post("/v1/recommend", json={"user_id": f"u{i}", "k": 2})
            assert response.status_code == 200
            seen[(response.headers["x-rankstack-worker"], response.json()["model_version"])] += 1
    return seen


def reload(server: ServerProcess, artifact: Path) -> httpx.Response:
    """``POST /admin/reload`` with the token."""
    return httpx.post(server.url + "/admin/reload", json={"artifact": str(artifact)}, headers=AUTH, timeout=40)


def served_versions(seen: Counter[tuple[str, str]]) -> set[str]:
    """The model versions among the answers."""
    return {version for _, version in seen}


def recommend_count(server: ServerProcess) -> float:
    """``rankstack_http_requests_total`` for 200 answers of /v1/recommend, as /metrics reports it."""
    text = httpx.get(server.url + "/metrics", timeout=10).text
    match = re.search(r'^rankstack_http_requests_total\{endpoint="/v1/recommend",status="200"\} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


def test_both_workers_answer_recommends(server: ServerProcess) -> None:
    seen = recommend_many(server, 60)
    assert len({pid for pid, _ in seen}) == 2
    assert server.proc is not None
    assert server.proc.pid not in {int(pid) for pid, _ in seen}  # the parent only supervises


def test_metrics_add_up_every_worker(server: ServerProcess) -> None:
    before = recommend_count(server)
    seen = recommend_many(server, 40)
    assert len({pid for pid, _ in seen}) == 2
    assert recommend_count(server) - before == 40
    text = httpx.get(server.url + "/metrics", timeout=10).text
    assert len(re.findall(r"^rankstack_model_loaded_timestamp_seconds\{pid=", text, re.M)) == 2


def test_a_reload_switches_every_worker(server: ServerProcess, tmp_path: Path) -> None:
    previous = served_versions(recommend_many(server, 4))
    response = reload(server, write_fake_artifact(tmp_path / "w2", "w2"))
    assert response.status_code == 200, response.text
    assert response.json()["version"] == "w2" and response.json()["workers_switched"] == 2
    assert {response.json()["previous_version"]} == previous
    seen = recommend_many(server, 50)
    assert served_versions(seen) == {"w2"} and len(seen) == 2
    readiness = {httpx.get(server.url + "/readyz", timeout=10).json()["model_version"] for _ in range(10)}
    assert readiness == {"w2"}


def test_a_corrupt_artifact_is_refused_and_every_worker_keeps_the_old_one(server: ServerProcess,
                                                                          tmp_path: Path) -> None:
    assert reload(server, write_fake_artifact(tmp_path / "good", "good")).status_code == 200
    corrupt = write_fake_artifact(tmp_path / "corrupt", "bad")
    (corrupt / "manifest.json").write_text('{"format": 1, "vers')
    response = reload(server, corrupt)
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "artifact_refused"
    assert "still serving 'good'" in response.json()["message"]
    seen = recommend_many(server, 50)
    assert served_versions(seen) == {"good"} and len(seen) == 2


def test_a_worker_that_cannot_follow_is_reported_not_hidden(server: ServerProcess, tmp_path: Path) -> None:
    assert reload(server, write_fake_artifact(tmp_path / "base", "base")).status_code == 200
    response = reload(server, write_fake_artifact(tmp_path / "once", "once", load_once=True))  # 2nd load fails
    assert response.status_code == 500
    detail = response.json()["detail"]
    assert "'once'" in detail and "served by 1 of 2 workers" in detail and "kept 'base'" in detail
    assert "loaded once only" in detail
    assert served_versions(recommend_many(server, 40)) == {"base", "once"}
    assert reload(server, write_fake_artifact(tmp_path / "fixed", "fixed")).json()["workers_switched"] == 2



def test_connections_opened_together_are_spread_over_the_workers(server: ServerProcess) -> None:
    """Each worker listens on its own SO_REUSEPORT socket: with one shared socket, a burst of connections all
    went to whichever worker woke first."""
    clients = [httpx.Client(base_url=server.url, timeout=10) for _ in range(16)]
    try:
        first = [c.post("/v1/recommend", json={"user_id": "u1", "k": 1}) for c in clients]  # 16 connections
        again = [c.post("/v1/recommend", json={"user_id": "u2", "k": 1}) for c in clients]  # kept alive
    finally:
        for c in clients:
            c.close()
    owners = [r.headers["x-rankstack-worker"] for r in first]
    assert [r.headers["x-rankstack-worker"] for r in again] == owners
    assert min(Counter(owners).values()) >= 2 and len(set(owners)) == 2  # P(fail) ~ 5e-4 with random spreading


def test_a_worker_carrying_all_the_load_closes_connections_to_share_it(server: ServerProcess) -> None:
    """Load through one worker's kept-alive connections only: within a few balance periods it answers some with
    ``Connection: close`` (the clients reconnect and the kernel places them anew) and counts them."""
    clients = [httpx.Client(base_url=server.url, timeout=10) for _ in range(12)]
    try:
        owners = [c.post("/v1/recommend", json={"user_id": "u1", "k": 1}).headers["x-rankstack-worker"]
                  for c in clients]
        busy = Counter(owners).most_common(1)[0][0]
        mine = [c for c, owner in zip(clients, owners, strict=True) if owner == busy]
        closed, deadline = 0, time.monotonic() + 20
        while not closed and time.monotonic() < deadline:
            for client in mine:
                answer = client.post("/v1/recommend", json={"user_id": "u2", "k": 1})
                assert answer.status_code == 200
                closed += answer.headers.get("connection") == "close"
    finally:
        for client in clients:
            client.close()
    assert closed
    counted, deadline = 0.0, time.monotonic() + 10  # the closes are counted at the next balance period
    while not counted and time.monotonic() < deadline:
        text = httpx.get(server.url + "/metrics", timeout=10).text
        counted = float(re.findall(r"^rankstack_balance_closes_total (\S+)$", text, re.M)[0])
        time.sleep(0.2)
    assert counted >= 1


def kill_and_wait_for_replacement(proc: ServerProcess, victim: int, timeout_s: float = 60.0) -> set[int]:
    """SIGKILL worker ``victim``; the worker pids once two answer and ``victim`` is not among them (or at the
    timeout)."""
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + timeout_s
    after: set[int] = set()
    while time.monotonic() < deadline and (len(after) < 2 or victim in after):
        with contextlib.suppress(RuntimeError, httpx.HTTPError):  # the replacement may still be starting
            after = proc.worker_pids(timeout_s=5)
    return after


def test_a_dead_worker_is_replaced(tmp_path: Path) -> None:
    proc = ServerProcess(write_fake_artifact(tmp_path / "v1"), f"sqlite:{tmp_path / 'state.db'}",
                         tmp_path / "server.log", workers=2)
    proc.start()
    try:
        victim = min(proc.worker_pids())
        after = kill_and_wait_for_replacement(proc, victim)
        assert victim not in after and len(after) == 2
    finally:
        proc.stop()

def thread_cores(pid: int) -> list[set[int]]:
    """The cores each thread of process ``pid`` may run on."""
    return [os.sched_getaffinity(int(tid)) for tid in os.listdir(f"/proc/{pid}/task")]


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or not Path("/proc/self/task").exists(),
                    reason="this platform has no per-thread CPU affinity")
def test_pinned_workers_each_run_on_one_core_and_a_replacement_takes_the_same(tmp_path: Path) -> None:
    cores = sorted(os.sched_getaffinity(0))
    proc = ServerProcess(write_fake_artifact(tmp_path / "v1"), f"sqlite:{tmp_path / 'state.db'}",
                         tmp_path / "server.log", workers=2, options=["--pin-workers"])
    proc.start()
    try:
        placed = {}
        for pid in proc.worker_pids():
            seen = thread_cores(pid)
            assert len(seen) >= 2 and all(len(c) == 1 for c in seen) and len({min(c) for c in seen}) == 1
            placed[pid] = min(seen[0])
        assert sorted(placed.values()) == sorted(cores[i % len(cores)] for i in range(2))  # distinct on 2+ cores
        assert os.sched_getaffinity(proc.proc.pid) == set(cores)  # type: ignore[union-attr]  # the parent floats
        victim = min(placed)
        (replacement,) = kill_and_wait_for_replacement(proc, victim) - set(placed)
        assert {min(c) for c in thread_cores(replacement)} == {placed[victim]}
    finally:
        proc.stop()


def test_sigterm_stops_every_worker_and_removes_the_temporary_folder(tmp_path: Path) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    server = ServerProcess(write_fake_artifact(tmp_path / "v1"), f"sqlite:{tmp_path / 'state.db'}",
                           tmp_path / "server.log", workers=2, env={"TMPDIR": str(temp)})
    server.start()
    try:
        workers = server.worker_pids()
        assert len(list(temp.glob("rankstack-serve-*"))) == 1
        assert server.proc is not None
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=15) == 0
        assert not any(pid_alive(pid) for pid in workers)
        assert list(temp.glob("rankstack-serve-*")) == []
        with pytest.raises(httpx.ConnectError):
            httpx.get(server.url + "/healthz", timeout=2)
    finally:
        server.stop()


def test_workers_stop_when_the_parent_is_killed(tmp_path: Path) -> None:
    server = ServerProcess(write_fake_artifact(tmp_path / "v1"), f"sqlite:{tmp_path / 'state.db'}",
                           tmp_path / "server.log", workers=2, env={"TMPDIR": str(tmp_path)})  # no cleanup after -9
    server.start()
    try:
        workers = server.worker_pids()
        server.kill9()
        deadline = time.monotonic() + 15
        while any(pid_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(pid_alive(pid) for pid in workers)  # orphaned workers notice and shut down
    finally:
        server.stop()


@pytest.mark.parametrize(("workers", "cores", "environ", "expected"), [
    (2, 2, {}, 1),                          # two workers on two cores: one thread each
    (2, 16, {}, 8),
    (4, 2, {}, 1),                          # more workers than cores: never below one
    (1, 8, {}, 8),
    (2, None, {}, 1),                       # the core count is unknown
    (2, 16, {"OMP_NUM_THREADS": "3"}, None),  # the operator's setting wins
])
def test_worker_threads_share_the_cores(workers: int, cores: int | None, environ: dict[str, str],
                                        expected: int | None) -> None:
    assert worker_threads(workers, cores, environ) == expected
