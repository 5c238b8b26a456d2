"""Small fixed costs around the pipeline in the service, each timed in isolation (process CPU per call).

* thread hops: a trivial call through Starlette's ``run_in_threadpool`` (how event posts were stored), through
  the service's ``LoopWriter`` (how they are stored now; alone and ten at once), through the state reader's
  ``BoundedCalls`` on its threads, and inline once it has earned that;
* a slate item: ``ScoredItem.model_construct`` against ``ScoredItem.trusted``;
* storing a one-click post in SQLite (``synchronous=FULL``): alone in its transaction (``add_events``) and ten
  posts in one (``add_event_batches``, how the service's writer stores posts queued during a write);
* with ``--redis URL`` (a Redis server to write under a fresh key prefix): a one-click post alone (one script
  call) and ten in one call, likewise;
* with ``--state FILE`` (a SQLite state, e.g. one ``serve_load.py --keep-state`` left): ``recent_items_many`` for
  1 and 8 of its busiest users (on a copy of the file).

Usage: python benchmarks/serving_overheads.py [--calls 3000] [--state FILE] [--redis URL]
Run old and new code alternately (``PYTHONPATH=<checkout>/src``) to compare: this box's speed drifts.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import shutil
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import uvloop
from starlette.concurrency import run_in_threadpool

from rankstack.events import Event
from rankstack.pipeline.api import ScoredItem
from rankstack.serving.guard import BoundedCalls
from rankstack.state.redis_store import RedisStateStore
from rankstack.state.sqlite import SQLiteStateStore


def per_call_us(fn: Callable[[int], object], calls: int) -> float:
    """Process CPU microseconds per ``fn(i)``, after a short warm-up."""
    for i in range(min(100, calls)):
        fn(i)
    t0 = time.process_time()
    for i in range(calls):
        fn(i)
    return 1e6 * (time.process_time() - t0) / calls


async def loop_hops(calls: int) -> dict[str, float]:
    """Hops from the event loop to a thread and back, per call (the writer's only where the code has it)."""
    hops: list[tuple[str, Callable[[], Awaitable[object]], int]] = [
        ("run_in_threadpool", lambda: run_in_threadpool(int), 1)]
    try:
        from rankstack.serving.loop_writer import LoopWriter
    except ImportError:  # an older checkout
        writer = None
    else:
        live: LoopWriter[int, int] = LoopWriter(lambda items: list(items))
        writer = live
        hops += [("LoopWriter", lambda: live.submit(1), 1), ("LoopWriter, 10 at once", lambda: live.submit(1), 10)]
    out = {}
    for label, hop, together in hops:
        for _ in range(50):
            await asyncio.gather(*(hop() for _ in range(together)))
        t0 = time.process_time()
        for _ in range(calls // together):
            await asyncio.gather(*(hop() for _ in range(together)))
        out[label] = 1e6 * (time.process_time() - t0) / (calls // together * together)
    if writer is not None:
        writer.close()
    return out


def _click(key: str) -> Event:
    return Event(event_id=key, user_id=f"u{hash(key) % 1000}", item_id=f"i{hash(key) % 500}", event="click",
                 timestamp=time.time())


def _posts(store: SQLiteStateStore | RedisStateStore, calls: int, alone: str, ten: str) -> dict[str, float]:
    """Process CPU per one-click post: alone (``add_events``) and ten in one write (``add_event_batches``)."""
    posts = max(calls // 10, 20)
    out = {alone: per_call_us(lambda i: store.add_events([_click(f"a{i}")]), posts)}
    together = getattr(store, "add_event_batches", None)
    if together is not None:  # (older checkouts lack it)
        out[ten] = per_call_us(lambda i: together([[_click(f"t{i}-{j}")] for j in range(10)]), posts // 10) / 10
    return out


def event_writes(calls: int) -> dict[str, float]:
    """Posts stored in a fresh SQLite file: alone in its transaction, and ten together."""
    folder = Path(tempfile.mkdtemp(prefix="overheads-"))
    store = SQLiteStateStore(folder / "state.db")
    out = _posts(store, calls, "SQLite post, alone in its transaction", "SQLite post, ten in one transaction")
    store.close()
    shutil.rmtree(folder, ignore_errors=True)
    return out


def redis_writes(url: str, calls: int) -> dict[str, float]:
    """Posts stored in Redis under a fresh key prefix (left for the server's retention): alone, and ten in one call."""
    store = RedisStateStore(url, prefix=f"overheads-{uuid.uuid4().hex[:8]}:")
    out = _posts(store, calls, "Redis post, alone in its call", "Redis post, ten in one call")
    store.close()
    return out


def state_reads(path: Path, calls: int) -> dict[str, float]:
    """``recent_items_many`` of 1 and 8 of the busiest users of a copy of the state file."""
    folder = Path(tempfile.mkdtemp(prefix="overheads-"))
    shutil.copy(path, folder / "state.db")
    store = SQLiteStateStore(folder / "state.db")
    users = [u for (u,) in store._query("SELECT user_id FROM events GROUP BY user_id ORDER BY COUNT(*) DESC"
                                        " LIMIT 2000", ())]
    if len(users) < 16:
        raise SystemExit(f"{path}: fewer than 16 users with events")
    out = {}
    for size in (1, 8):
        def read(i: int, size: int = size) -> object:
            at = (i * size) % (len(users) - size)
            return store.recent_items_many(users[at: at + size], 50)

        out[f"recent_items_many, {size} users"] = per_call_us(read, calls // 4)
    store.close()
    shutil.rmtree(folder, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--state", type=Path, default=None, help="a SQLite state file to time reads on (copied)")
    parser.add_argument("--redis", default=None, help="a Redis URL to time posts on (fresh key prefix)")
    args = parser.parse_args(argv)
    results = uvloop.run(loop_hops(args.calls))
    reader = BoundedCalls(2)
    results["BoundedCalls, on its threads"] = per_call_us(lambda i: reader.call(int, 1.0), args.calls)
    if "inline_after" in inspect.signature(BoundedCalls).parameters:  # (older checkouts lack these)
        inline = BoundedCalls(2, inline_after=1)
        results["BoundedCalls, inline"] = per_call_us(lambda i: inline.call(int, 1.0), args.calls)
    results["ScoredItem.model_construct"] = per_call_us(
        lambda i: ScoredItem.model_construct(item_id="item", score=0.5, propensity=None), args.calls * 10)
    trusted = getattr(ScoredItem, "trusted", None)
    if trusted is not None:
        results["ScoredItem.trusted"] = per_call_us(lambda i: trusted("item", 0.5, None), args.calls * 10)
    results.update(event_writes(args.calls))
    if args.redis is not None:
        results.update(redis_writes(args.redis, args.calls))
    if args.state is not None:
        results.update(state_reads(args.state, args.calls))
    for label, us in results.items():
        print(f"{label:>36}: {us:7.1f} us CPU per call")


if __name__ == "__main__":
    main()
