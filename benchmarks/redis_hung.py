"""Recommend throughput and /healthz latency while Redis is hung (SIGSTOP), against the service over a fake model.

Starts a throw-away ``redis-server`` (AOF always) and ``python -m rankstack.serving`` over the test suite's fake
artifact (``tests/serving/serving_fakes.py``: the service's own overhead, not a pipeline's), then for each phase
(Redis answering, Redis stopped with SIGSTOP) runs one closed-loop recommend client for ``--seconds`` and probes
/healthz every 100 ms from another.

``--read-overhead`` instead times one user's recent items from a SQLite store inline and through the service's
guard (a reader thread), 3 runs of 3,000 reads each.

Usage: python benchmarks/redis_hung.py [--seconds 7] [--read-overhead]
Prints one line per phase (requests answered, recommend p50/p99/max, /healthz max) and writes nothing else.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(url: str, timeout_s: float = 60.0) -> None:
    """Wait until ``url`` answers 200."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=0.5).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer")


def phase(url: str, seconds: float) -> str:
    """One closed-loop recommend client and a /healthz prober for ``seconds``: a summary line."""
    latencies: list[float] = []
    health: list[float] = []
    stop = threading.Event()

    def probe() -> None:
        with httpx.Client(base_url=url, timeout=10) as http:
            while not stop.is_set():
                t0 = time.perf_counter()
                http.get("/healthz")
                health.append(time.perf_counter() - t0)
                time.sleep(0.1)

    prober = threading.Thread(target=probe)
    prober.start()
    with httpx.Client(base_url=url, timeout=10) as http:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            t0 = time.perf_counter()
            http.post("/v1/recommend", json={"user_id": "u1", "k": 3})
            latencies.append(time.perf_counter() - t0)
    stop.set()
    prober.join()
    ms = np.array(latencies) * 1000
    return (f"{len(ms)} requests in {seconds:.0f} s; recommend p50 {np.percentile(ms, 50):.1f} ms, p99 "
            f"{np.percentile(ms, 99):.1f} ms, max {ms.max():.0f} ms; /healthz max {max(health) * 1000:.0f} ms")


def read_overhead() -> None:
    """Microseconds per state read, inline and through ``GuardedState`` (3 runs each)."""
    from rankstack.events import Event
    from rankstack.serving.guard import BoundedCalls, GuardedState, StateBreaker
    from rankstack.state import SQLiteStateStore

    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStateStore(Path(tmp) / "s.db")
        store.add_events([Event(event_id=str(i), user_id=f"u{i % 50}", item_id=f"i{i}", event="click")
                          for i in range(1_000)])
        breaker, reader = StateBreaker(1.0), BoundedCalls(2)
        reads = {"inline": lambda: store.recent_items_many(["u1"], 50),
                 "guarded": lambda: GuardedState(store, breaker, reader, timeout_s=0.05).recent_items_many(["u1"], 50)}
        for name, read in reads.items():
            runs = []
            for _ in range(3):
                for _ in range(200):
                    read()
                t0 = time.perf_counter()
                for _ in range(3_000):
                    read()
                runs.append((time.perf_counter() - t0) / 3_000 * 1e6)
            print(f"{name}: " + ", ".join(f"{us:.1f}" for us in runs) + " us per read")
        reader.close()
        store.close()


def main() -> None:
    """Run both phases and print their lines."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=7.0)
    parser.add_argument("--read-overhead", action="store_true")
    args = parser.parse_args()
    if args.read_overhead:
        read_overhead()
        return
    redis_bin = shutil.which("redis-server")
    if redis_bin is None:
        sys.exit("needs redis-server on PATH")
    with tempfile.TemporaryDirectory() as tmp:
        redis_port, port = free_port(), free_port()
        redis = subprocess.Popen([redis_bin, "--port", str(redis_port), "--bind", "127.0.0.1", "--dir", tmp,
                                  "--appendonly", "yes", "--appendfsync", "always", "--save", ""],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        sys.path.insert(0, str(ROOT / "tests" / "serving"))
        from serving_fakes import write_fake_artifact

        artifact = write_fake_artifact(Path(tmp) / "v1")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests" / "serving"),
                                                            os.environ.get("PYTHONPATH", "")])}
        server = subprocess.Popen([sys.executable, "-m", "rankstack.serving", str(artifact), "--port", str(port),
                                   "--state", f"redis://127.0.0.1:{redis_port}/0", "--loader",
                                   "serving_fakes:load_fake"], env=env, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for(url + "/healthz")
            print("redis answering:", phase(url, args.seconds), flush=True)
            os.kill(redis.pid, signal.SIGSTOP)
            print("redis SIGSTOPped:", phase(url, args.seconds), flush=True)
        finally:
            os.kill(redis.pid, signal.SIGCONT)
            server.terminate()
            server.wait(10)
            redis.kill()
            redis.wait(10)


if __name__ == "__main__":
    main()
