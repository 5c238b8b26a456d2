"""Run the real ``rankstack serve`` in a subprocess (uvicorn, real sockets) for crash and restart tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """``python -m rankstack.serving ARTIFACT --state STATE --loader …`` on a free port (= rankstack serve)."""

    def __init__(self, artifact: Path, state: str, log_path: Path, loader: str = "serving_fakes:load_fake", *,
                 workers: int = 1, env: dict[str, str] | None = None, options: list[str] | None = None) -> None:
        self.artifact, self.state, self.log_path, self.loader = artifact, state, log_path, loader
        self.workers, self.extra_env, self.options = workers, env or {}, options or []
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL of the server."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> None:
        """Start the server and wait until /healthz answers."""
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
               **self.extra_env}
        workers = ["--workers", str(self.workers)] if self.workers != 1 else []
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "rankstack.serving", str(self.artifact),
                 "--port", str(self.port), "--state", self.state, "--loader", self.loader, *workers, *self.options],
                env=env, stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=0.5).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        self.stop()  # a server that never answered must not outlive the test
        raise RuntimeError(f"server did not answer within {timeout_s} s: {self.log_path.read_text()[-2000:]}")

    def worker_pids(self, timeout_s: float = 30.0) -> set[int]:
        """Wait until every worker process has answered /healthz (new connection each time); their pids. A
        connection reset is asked again: the kernel resets connections queued on a worker killed just before."""
        seen: set[int] = set()
        deadline = time.monotonic() + timeout_s
        while len(seen) < self.workers and time.monotonic() < deadline:
            try:
                seen.add(int(httpx.get(self.url + "/healthz", timeout=5).headers["x-rankstack-worker"]))
            except httpx.TransportError:
                time.sleep(0.05)
        if len(seen) < self.workers:
            raise RuntimeError(f"only workers {sorted(seen)} answered within {timeout_s} s")
        return seen

    def kill9(self) -> None:
        """SIGKILL the server: no shutdown hooks, no flushing."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        """Terminate the server if it still runs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
