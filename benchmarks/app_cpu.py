"""CPU time per request of the whole service app, in process: the ASGI app as the server builds it, without uvicorn.

``pipeline_cpu.py`` times ``Pipeline.recommend`` alone; this times what a request costs the service around it too
(fast path, admission, batcher, state reads through the guard, the event writer, metrics, JSON), one request at a
time on one uvloop loop, with a fresh SQLite state store. Per round it sends a recommend for a user without fresh
events, an event post (one click) for another user, then a recommend for that user (a state-cache miss), and
reports the process CPU time (every thread) of each kind, then ``--calls`` event posts alone and ``/healthz``
alone, and the CPU each thread of the process used during the rounds.

Usage: python benchmarks/app_cpu.py ARTIFACT [--calls 300] [--deadline-ms 100] [--json]
Compare versions by running it alternately from two checkouts (``PYTHONPATH=<checkout>/src``): this box's speed
drifts by tens of percent within minutes, so only interleaved runs compare.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import torch
import uvloop

from rankstack.pipeline.components import open_state
from rankstack.pipeline.pipeline import Pipeline
from rankstack.serving.app import create_app
from rankstack.serving.loaders import DEFAULT_LOADER, resolve_loader
from rankstack.serving.settings import ServiceSettings

App = Callable[[dict[str, Any], Callable[[], Awaitable[dict[str, Any]]], Callable[[dict[str, Any]], Awaitable[None]]],
               Awaitable[None]]


async def request(app: App, method: str, path: str, body: dict[str, Any] | None = None) -> int:
    """One HTTP request through the ASGI app; its status code."""
    raw = b"" if body is None else json.dumps(body).encode()
    headers = [(b"host", b"bench"), (b"content-length", str(len(raw)).encode())]
    if body is not None:
        headers.append((b"content-type", b"application/json"))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "path": path,
             "raw_path": path.encode(), "query_string": b"", "root_path": "", "scheme": "http", "headers": headers,
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 8000), "state": {}}
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:  # the app only asks again to watch for a disconnect
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": raw, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])

    await app(scope, receive, send)
    return status


async def lifespan(app: App, phase: str, queue: asyncio.Queue[dict[str, Any]], done: asyncio.Event) -> None:
    """Drive the app's lifespan to ``phase`` ("startup" or "shutdown") and wait until it has completed."""
    done.clear()
    await queue.put({"type": f"lifespan.{phase}"})
    await done.wait()


def thread_cpu() -> dict[str, float]:
    """CPU seconds (user + system) of each thread of this process so far, by thread id."""
    out: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended
            continue
        out[task.name] = (int(fields[11]) + int(fields[12])) / tick
    return out


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Build the app, warm it up, then time the rounds and the single-kind runs."""
    settings = ServiceSettings.from_env(args.artifact, deadline_s=args.deadline_ms / 1000.0)
    store = open_state(f"sqlite:{tempfile.mkdtemp(prefix='app-cpu-')}/state.db")
    app: App = create_app(resolve_loader(DEFAULT_LOADER), store, settings)  # type: ignore[assignment]
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    done = asyncio.Event()

    async def send(message: dict[str, Any]) -> None:
        if message["type"].endswith((".complete", ".failed")):
            done.set()

    task = asyncio.ensure_future(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, queue.get, send))
    await lifespan(app, "startup", queue, done)
    parts = Pipeline.load(args.artifact).parts
    n = args.calls
    users = [str(u) for u in parts.user_map.to_external_list(list(range(min(len(parts.user_map), 3 * n + 100))))]
    items = [str(i) for i in parts.item_map.to_external_list(list(range(min(len(parts.item_map), 3 * n + 100))))]

    def click(i: int) -> dict[str, Any]:
        return {"events": [{"event_id": f"bench-{i}-{time.time()}", "user_id": users[i % len(users)],
                            "item_id": items[i % len(items)], "event": "click", "timestamp": time.time()}]}

    async def recommend(i: int) -> int:
        return await request(app, "POST", "/v1/recommend", {"user_id": users[i % len(users)], "k": 20})

    for i in range(args.warmup):
        if await request(app, "POST", "/v1/events", click(i)) != 200 or await recommend(i) != 200:
            raise SystemExit("warm-up request failed: is ARTIFACT a pipeline artifact?")
    spent = {"recommend": 0.0, "event_post": 0.0, "recommend_after_event": 0.0}
    before = thread_cpu()
    for i in range(n):
        fresh, other = args.warmup + i, args.warmup + n + i
        t0 = time.process_time()
        await recommend(other)
        t1 = time.process_time()
        await request(app, "POST", "/v1/events", click(fresh))
        t2 = time.process_time()
        await recommend(fresh)
        t3 = time.process_time()
        spent["recommend"] += t1 - t0
        spent["event_post"] += t2 - t1
        spent["recommend_after_event"] += t3 - t2
    after = thread_cpu()
    threads = sorted((round(after[t] - before.get(t, 0.0), 2) for t in after), reverse=True)
    alone: dict[str, float] = {}
    for label, call in (("event_post_alone", lambda i: request(app, "POST", "/v1/events", click(2 * n + i))),
                        ("healthz_alone", lambda i: request(app, "GET", "/healthz"))):
        t0 = time.process_time()
        for i in range(n):
            await call(i)
        alone[label] = time.process_time() - t0
    await lifespan(app, "shutdown", queue, done)
    task.cancel()
    ms = {k: round(1000.0 * v / n, 3) for k, v in {**spent, **alone}.items()}
    return {"artifact": str(args.artifact), "calls": n, "cpu_ms_per_request": ms,
            "thread_cpu_s_during_rounds": [t for t in threads if t > 0]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("artifact", type=Path)
    parser.add_argument("--calls", type=int, default=300, help="rounds (and single-kind requests) to time")
    parser.add_argument("--warmup", type=int, default=100, help="rounds before timing")
    parser.add_argument("--deadline-ms", type=float, default=100.0, help="the service's recommend deadline")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    result = uvloop.run(measure(args))
    if args.json:
        print(json.dumps(result))
        return
    for kind, ms in result["cpu_ms_per_request"].items():
        print(f"{kind:>24}: {ms:.3f} ms CPU")
    print(f"{'threads (CPU s)':>24}: {result['thread_cpu_s_during_rounds']}")


if __name__ == "__main__":
    main()
