"""Fault injection on ``--workers 2``: a worker killed while the artifact on disk is broken, deleted or replaced is
replaced from the service's snapshot, and a replacement that cannot start never takes the healthy worker down."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from server_process import ServerProcess
from serving_fakes import write_fake_artifact


class Traffic:
    """Recommends on new connections from a background thread until stopped: statuses, versions, transport errors."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.statuses: Counter[int] = Counter()
        self.versions: Counter[str] = Counter()
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        limits = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(base_url=self.server.url, timeout=5, limits=limits) as http:
            while not self._stop.is_set():
                try:
                    response = http.post("/v1/recommend", json={"user_id": "u1", "k": 2})
                except httpx.HTTPError as exc:
                    self.errors.append(repr(exc))
                    continue
                self.statuses[response.status_code] += 1
                if response.status_code == 200:
                    self.versions[response.json()["model_version"]] += 1
                time.sleep(0.01)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """Two workers over the fake v1 artifact, the service's temporary folder under ``tmp_path``."""
    proc = ServerProcess(write_fake_artifact(tmp_path / "v1"), f"sqlite:{tmp_path / 'state.db'}",
                         tmp_path / "server.log", workers=2, env={"TMPDIR": str(tmp_path)})
    proc.start()
    yield proc
    proc.stop()


def replaced(server: ServerProcess, victim: int, timeout_s: float = 25.0) -> set[int]:
    """Wait until two workers other than ``victim`` answer; their pids."""
    deadline = time.monotonic() + timeout_s
    after: set[int] = set()
    while time.monotonic() < deadline and (len(after) < 2 or victim in after):
        assert server.proc is not None and server.proc.poll() is None, server.log_path.read_text()[-2000:]
        with contextlib.suppress(RuntimeError, httpx.HTTPError):
            after = server.worker_pids(timeout_s=3)
    return after


def readiness(server: ServerProcess) -> dict[str, object]:
    """The /readyz body."""
    body: dict[str, object] = httpx.get(server.url + "/readyz", timeout=5).json()
    return body


def corrupt(root: Path) -> None:
    """Overwrite the artifact's manifest with bytes that do not load."""
    (root / "manifest.json").write_bytes(b'{"format": 1, "vers\xff')


def replace_with_another_version(root: Path) -> None:
    """Write another artifact over the folder (a deploy that did not reload)."""
    shutil.rmtree(root)
    write_fake_artifact(root, "other")


DAMAGES: list[Callable[[Path], None]] = [corrupt, shutil.rmtree, replace_with_another_version]


def test_a_killed_worker_is_replaced_from_the_snapshot_whatever_happened_to_the_artifact(
        server: ServerProcess) -> None:
    with Traffic(server) as traffic:
        for damage in DAMAGES:
            write_fake_artifact(server.artifact)  # whole again, then damaged while both workers serve
            victim = min(server.worker_pids())
            damage(server.artifact)
            os.kill(victim, signal.SIGKILL)
            after = replaced(server, victim)
            assert len(after) == 2 and victim not in after, f"{damage.__name__}: {server.log_path.read_text()}"
            assert readiness(server)["workers_serving"] == 2
    assert server.proc is not None and server.proc.poll() is None
    assert set(traffic.statuses) == {200} and set(traffic.versions) == {"v1"}  # never the artifact now on disk
    assert traffic.statuses[200] > 50 and len(traffic.errors) <= len(DAMAGES)  # at most the request hit by a kill


def test_a_replacement_that_cannot_start_is_retried_while_the_other_worker_serves(server: ServerProcess,
                                                                                  tmp_path: Path) -> None:
    [snapshot] = list(tmp_path.glob("rankstack-serve-*/snapshots/artifact-*"))
    good = (snapshot / "manifest.json").read_bytes()
    victim = min(server.worker_pids())
    corrupt(snapshot)  # even the service's own copy is broken: no replacement can start
    with Traffic(server) as traffic:
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 15
        while "could not start" not in server.log_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)
        assert server.proc is not None and server.proc.poll() is None, server.log_path.read_text()[-2000:]
        ready = httpx.get(server.url + "/readyz", timeout=5)
        assert ready.status_code == 200 and ready.json()["workers_serving"] == 1
        assert ready.json()["workers_expected"] == 2
        text = httpx.get(server.url + "/metrics", timeout=5).text
        assert re.search(r"^rankstack_workers_serving 1\.0$", text, re.M)
        assert re.search(r"^rankstack_workers_expected 2\.0$", text, re.M)
        (snapshot / "manifest.json").write_bytes(good)  # repaired: the next retry comes up
        after = replaced(server, victim, timeout_s=20)
    log = server.log_path.read_text()
    assert len(after) == 2 and "trying again in" in log and "1 of 2 workers serve meanwhile" in log
    assert set(traffic.statuses) == {200} and traffic.statuses[200] > 20 and len(traffic.errors) <= 1


def test_kept_alive_connections_reach_the_replacement(server: ServerProcess) -> None:
    """The survivor closes each connection once when the replacement joins, so clients reconnect and the kernel
    spreads them again (before, 0 of ~10k later requests on kept connections reached the new worker)."""
    clients = [httpx.Client(base_url=server.url, timeout=10) for _ in range(16)]
    try:
        victim = min(server.worker_pids())
        os.kill(victim, signal.SIGKILL)
        time.sleep(0.5)
        for c in clients:  # every connection now lands on the survivor (the only worker listening)
            with contextlib.suppress(httpx.HTTPError):
                c.post("/v1/recommend", json={"user_id": "u1", "k": 1})
        after = replaced(server, victim)
        time.sleep(1.0)  # the survivor's follower notices the new worker within a poll
        owners: Counter[str] = Counter()
        for _ in range(3):
            for c in clients:
                response = c.post("/v1/recommend", json={"user_id": "u1", "k": 1})
                assert response.status_code == 200
                owners[response.headers["x-rankstack-worker"]] += 1
    finally:
        for c in clients:
            c.close()
    assert {int(pid) for pid in owners} == after, owners  # P(all 16 reconnect to one worker) = 2 ** -15
