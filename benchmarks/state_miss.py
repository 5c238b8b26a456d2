"""What a SASRec state-cache miss costs: the ranker's user state recomputed after a fresh click, in process.

Loads a pipeline artifact with a SASRec ranker (e.g. the one ``serve_load.py --workdir DIR`` builds), warms it up as
the service does (the known users' trained states cached), then times in thread CPU time, one torch thread:

* ``states``: ``SASRec.user_states`` for a batch of ``B`` histories that each gained one fresh item (all misses:
  one transformer pass over the batch) against the same histories already cached (all hits);
* ``recommend``: ``Pipeline.recommend`` for ``B`` users right after one fresh click each (``recommend_fresh``: the
  state store read, the clicked item blocked, the state recomputed) against the same users asking again
  (``recommend_repeat``: the same history, its state now cached).

Usage: python benchmarks/state_miss.py ARTIFACT [--batch-sizes 1,8] [--calls 300]
Prints one JSON object on stdout (ms per call: median and mean; progress on stderr) and writes nothing else.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

import rankstack.pipeline.pipeline as pipeline_module
from rankstack.events import Event
from rankstack.pipeline.api import RecommendRequest
from rankstack.pipeline.pipeline import Pipeline
from rankstack.sequential.sasrec import SASRec
from rankstack.state.sqlite import SQLiteStateStore


class _CpuClock:
    """Stands in for the pipeline module's ``time``: stage laps in thread CPU time, wall clock otherwise."""

    perf_counter = staticmethod(time.thread_time)
    time = staticmethod(time.time)


def timed(calls: int, step: Callable[[int], Any]) -> dict[str, float]:
    """Median and mean thread CPU ms of ``step(i)`` over ``calls`` calls."""
    spent = []
    for i in range(calls):
        t0 = time.thread_time()
        step(i)
        spent.append(time.thread_time() - t0)
    ms = np.asarray(spent) * 1e3
    return {"median_ms": round(float(np.median(ms)), 3), "mean_ms": round(float(ms.mean()), 3)}


def measure_size(pipeline: Pipeline, model: SASRec, state: SQLiteStateStore, size: int, calls: int,
                 rng: np.random.Generator) -> dict[str, Any]:
    """Misses against hits for batches of ``size``: the states alone, then whole recommends."""
    n_users, n_items = len(pipeline.parts.user_map), len(pipeline.parts.item_map)
    length = pipeline.config.ranker.history if pipeline.config.ranker is not None else 50
    n = size * calls
    users = rng.integers(0, n_users, n)
    fresh = rng.integers(0, n_items, n)
    histories = pipeline.parts.histories
    grown = [np.append(histories[u][-(length - 1):], f) for u, f in zip(users, fresh, strict=True)]
    hits = [histories[u][-length:] for u in users]
    model.user_states(hits)  # cached, as after warm-up
    row: dict[str, Any] = {"states_miss": timed(calls, lambda i: model.user_states(grown[i * size: (i + 1) * size])),
                           "states_hit": timed(calls, lambda i: model.user_states(hits[i * size: (i + 1) * size]))}
    names = [str(x) for x in pipeline.parts.user_map.to_external_list(users)]
    items = [str(x) for x in pipeline.parts.item_map.to_external_list(fresh)]
    requests = [RecommendRequest(user_id=names[i], k=20) for i in range(n)]
    for i in range(min(n, 10 * size)):  # warm the stages
        pipeline.recommend(requests[i: i + 1], state, stage_deadlines=False)
    spent = []
    for i in range(calls):
        rows = range(i * size, (i + 1) * size)
        state.add_events([Event(event_id=f"miss-{size}-{r}", user_id=names[r], item_id=items[r], event="click",
                                timestamp=time.time()) for r in rows])
        t0 = time.thread_time()  # the store write is not the pipeline's work: timed from here
        pipeline.recommend(requests[i * size: (i + 1) * size], state, stage_deadlines=False)
        spent.append(time.thread_time() - t0)
    ms = np.asarray(spent) * 1e3
    row["recommend_fresh"] = {"median_ms": round(float(np.median(ms)), 3), "mean_ms": round(float(ms.mean()), 3)}
    # the same users again: their grown histories are cached now, as for a repeat request
    row["recommend_repeat"] = timed(calls, lambda i: pipeline.recommend(requests[i * size: (i + 1) * size], state,
                                                                        stage_deadlines=False))
    return row


def main() -> None:
    """Parse options, time misses against hits for each batch size, print one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("artifact", type=Path)
    parser.add_argument("--batch-sizes", default="1,8")
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    pipeline = Pipeline.load(args.artifact)
    ranker = pipeline.parts.ranker
    model = getattr(ranker, "source", None)
    if not isinstance(model, SASRec) or model.state_cache is None:
        raise SystemExit(f"{args.artifact}: the ranker is not a SASRec with a state cache")
    pipeline.warmup()
    rng = np.random.default_rng(args.seed)
    out: dict[str, Any] = {"artifact": str(args.artifact), "calls": args.calls, "torch_threads": 1,
                           "loadavg": os.getloadavg()}
    pipeline_module.time = _CpuClock  # type: ignore[assignment]
    with tempfile.TemporaryDirectory() as tmp:
        state = SQLiteStateStore(Path(tmp) / "state.db")
        for size in (int(b) for b in args.batch_sizes.split(",")):
            row = measure_size(pipeline, model, state, size, args.calls, rng)
            out[f"batch_{size}"] = row
            print(f"batch {size}: {row}", file=sys.stderr, flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
