"""CPU time of ``Pipeline.recommend`` per request and per stage, in process, for a few batch sizes.

Loads a pipeline artifact (e.g. the one ``serve_load.py --workdir DIR`` builds), posts ``--events`` random
clicks and impressions to a fresh SQLite state store, warms up, then times ``--calls`` batches of each size with
the stages run inline (no worker threads) and the stage clock switched to thread CPU time, so the figures are
the work done, not time spent waiting for the other core.

The pipeline warms up as the service does (``Pipeline.warmup``: the ranker's state cache holds the known users'
trained states); ``--no-state-cache`` turns that cache off, so that every request runs the transformer.

Usage: python benchmarks/pipeline_cpu.py ARTIFACT [--batch-sizes 1,4] [--calls 100] [--users 31500 | --known-users]
       [--no-state-cache]
Prints one line per batch size and writes nothing else (the state store lives in a temporary folder).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import rankstack.pipeline.pipeline as pipeline_module
from rankstack.events import Event
from rankstack.pipeline.api import RecommendRequest
from rankstack.pipeline.config import RankerStage
from rankstack.pipeline.pipeline import Pipeline
from rankstack.state.sqlite import SQLiteStateStore


class _CpuClock:
    """Stands in for the pipeline module's ``time``: stage laps in thread CPU time, wall clock otherwise."""

    perf_counter = staticmethod(time.thread_time)
    time = staticmethod(time.time)


def main() -> None:
    """Parse options, seed the state, time each batch size."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("artifact", type=Path)
    parser.add_argument("--batch-sizes", default="1,4")
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--users", type=int, default=31_500, help="user ids u0 … u{N-1} are drawn uniformly")
    parser.add_argument("--known-users", action="store_true",
                        help="draw the artifact's own users instead (for artifacts not built by serve_load.py)")
    parser.add_argument("--events", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-state-cache", action="store_true", help="run the ranker's network on every request")
    args = parser.parse_args()
    torch.set_num_threads(1)
    pipeline = Pipeline.load(args.artifact)
    if args.no_state_cache and isinstance(pipeline.config.ranker, RankerStage):
        ranker = pipeline.config.ranker.model_copy(update={"state_cache": 0})
        pipeline = pipeline.with_config(pipeline.config.model_copy(update={"ranker": ranker}))
    pipeline.warmup()
    n_items = len(pipeline.parts.item_map)
    n_users = len(pipeline.parts.user_map) if args.known_users else args.users
    names = ([str(u) for u in pipeline.parts.user_map.to_external_list(np.arange(n_users))] if args.known_users
             else [f"u{u}" for u in range(n_users)])
    items = pipeline.parts.item_map.to_external(np.arange(n_items)).to_list()
    rng = np.random.default_rng(args.seed)
    pipeline_module.time = _CpuClock  # type: ignore[assignment]
    with tempfile.TemporaryDirectory() as tmp:
        state = SQLiteStateStore(Path(tmp) / "state.db")
        now = time.time()
        state.add_events([Event(event_id=f"seed-{i}", user_id=names[rng.integers(n_users)],
                                item_id=str(items[rng.integers(n_items)]),
                                event="click" if i % 3 == 0 else "impression", timestamp=now - 60)
                          for i in range(args.events)])
        for size in (int(b) for b in args.batch_sizes.split(",")):
            users = rng.integers(0, n_users, size * (args.calls + 10))
            requests = [RecommendRequest(user_id=names[u], k=20) for u in users]
            batches = [requests[i * size: (i + 1) * size] for i in range(args.calls + 10)]
            for batch in batches[:10]:
                pipeline.recommend(batch, state, stage_deadlines=False)
            stages: dict[str, float] = {}
            started = time.process_time()
            for batch in batches[10:]:
                for stage, ms in pipeline.recommend(batch, state, stage_deadlines=False)[0].stage_ms.items():
                    stages[stage] = stages.get(stage, 0.0) + ms
            cpu_ms = 1000 * (time.process_time() - started) / (args.calls * size)
            per_batch = ", ".join(f"{k} {v / args.calls:.2f}" for k, v in stages.items())
            print(f"batch {size}: {cpu_ms:.2f} ms of CPU per request; per batch (ms): {per_batch}", flush=True)
        state.close()


if __name__ == "__main__":
    main()
