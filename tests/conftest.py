"""Fixtures shared across test folders: a real ``redis-server`` on a free port in a temp dir."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REDIS_BINARY = shutil.which("redis-server")
NO_REDIS = "no redis-server binary on PATH (apt-get install redis-server; .ci/run does)"
# .ci/run sets this: there a missing service fails the run instead of silently skipping its tests.
REQUIRE_SERVICES = os.environ.get("RANKSTACK_REQUIRE_SERVICES") == "1"


def missing_redis() -> None:
    """Skip the test, or fail it where the services are required (CI)."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{NO_REDIS}; RANKSTACK_REQUIRE_SERVICES=1 makes this a failure, not a skip")
    pytest.skip(NO_REDIS)


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A throw-away redis-server with AOF ``appendfsync always`` (the no-loss setting); can be killed and restarted."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Connection URL of the server."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start (or restart on the same port and data dir) and wait until it answers."""
        assert REDIS_BINARY is not None
        self.proc = subprocess.Popen(
            [REDIS_BINARY, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir),
             "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--protected-mode", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def kill(self) -> None:
        """Stop the server abruptly (SIGKILL) and wait for it to exit."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture
def unused_port() -> int:
    """A loopback port with no listener (for "store is down" cases)."""
    return free_port()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh redis-server for one test; killed afterwards."""
    if REDIS_BINARY is None:
        missing_redis()
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.kill()


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Run a test with one torch thread: on a shared 2-core machine two threads can be 10× slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def slow_clock(monkeypatch: pytest.MonkeyPatch) -> Any:
    """A :class:`SlowClock` behind every training deadline (``rankstack.evaluation.early_stopping_train``)."""
    from types import SimpleNamespace

    from rankstack.evaluation import early_stopping_train
    from slow_clock import SlowClock

    clock = SlowClock(monkeypatch)
    monkeypatch.setattr(early_stopping_train, "time", SimpleNamespace(perf_counter=clock.perf_counter))
    return clock
