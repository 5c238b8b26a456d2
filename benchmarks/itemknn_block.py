"""What item-kNN retrieval costs a user on a served artifact, and the dense top-k inside it, in process.

Loads a pipeline artifact with an item-kNN source (e.g. the one ``serve_load.py --workdir DIR`` builds), draws
``--users`` known users, then times in thread CPU time (median of ``--rounds`` rounds):

* ``retrieve_us``: ``ItemKNN._retrieve_block`` for one user at a time (the serving call at batch 1: neighbour
  entries, their sums, the seen items zeroed, the top ``--k``);
* on the user of median reach (stored neighbour entries over their history), the dense row's parts:
  ``rows_topk_us`` (ids and scores of the top ``--k``) and ``top_candidates_us`` (only the mask of the kept entries).

Usage: python benchmarks/itemknn_block.py ARTIFACT [--users 2000] [--k 300] [--rounds 5]
Prints one JSON object on stdout and writes nothing else.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.candidates import rows_topk, top_candidates
from rankstack.errors import ConfigError, RankstackError
from rankstack.pipeline.pipeline import Pipeline
from rankstack.retrieval.itemknn import ItemKNN


def _cpu_us(fn: Callable[[], object], calls: int, rounds: int) -> float:
    """Median over ``rounds`` of the thread CPU microseconds per call of ``fn``."""
    per_round = []
    for _ in range(rounds):
        start = time.thread_time()
        for _ in range(calls):
            fn()
        per_round.append((time.thread_time() - start) / calls * 1e6)
    return round(float(np.median(per_round)), 2)


def _source(artifact: Path) -> ItemKNN:
    """The artifact's item-kNN source, or a ConfigError naming what it has instead."""
    pipeline = Pipeline.load(artifact)
    for source in pipeline.parts.sources.values():
        if isinstance(source, ItemKNN):
            return source
    raise ConfigError(f"{artifact}: no item-kNN source among {sorted(pipeline.parts.sources)}")


def measure(artifact: Path, *, users: int, k: int, rounds: int, seed: int = 0) -> dict[str, Any]:
    """The figures described in the module docstring, JSON-ready."""
    knn = _source(artifact)
    train, sim = knn.train_, knn.similarity_
    if train is None or sim is None:
        raise ConfigError(f"{artifact}: the item-kNN source is not fitted")
    rng = np.random.default_rng(seed)
    active = np.flatnonzero(np.diff(train.indptr) > 0)
    if not len(active):
        raise ConfigError(f"{artifact}: the item-kNN source holds no user with a history")
    chosen = rng.choice(active, size=min(users, len(active)), replace=False).tolist()
    stored = np.diff(sim.indptr)  # neighbour entries stored for each item
    reach = np.array([int(stored[train.indices[train.indptr[u]:train.indptr[u + 1]]].sum()) for u in chosen])
    queue = itertools.cycle(chosen)
    for user in chosen[:50]:  # first-call costs out of the timing
        knn._retrieve_block(train, [user], k, True)
    retrieve = _cpu_us(lambda: knn._retrieve_block(train, [next(queue)], k, True), len(chosen), rounds)
    median_user = chosen[int(np.argsort(reach)[len(reach) // 2])]
    row = knn.score(np.array([median_user])).numpy()  # the dense row retrieval ranks, seen items zeroed below
    row[0, train.indices[train.indptr[median_user]:train.indptr[median_user + 1]]] = 0
    calls = 2000
    return {"artifact": str(artifact), "items": int(train.shape[1]), "users": len(chosen), "k": k,
            "reach_median": int(np.median(reach)), "reach_p90": int(np.percentile(reach, 90)),
            "retrieve_us": retrieve, "rows_topk_us": _cpu_us(lambda: rows_topk(row, k), calls, rounds),
            "top_candidates_us": _cpu_us(lambda: top_candidates(row, k), calls, rounds),
            "numpy": np.__version__, "machine": platform.machine(),
            "date": datetime.now(UTC).isoformat(timespec="seconds")}


def main(argv: list[str] | None = None) -> int:
    """Command line: print the figures of one artifact as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifact", type=Path)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--k", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    if args.users < 1 or args.k < 1 or args.rounds < 1:
        parser.error("--users, --k and --rounds must be >= 1")
    try:
        print(json.dumps(measure(args.artifact, users=args.users, k=args.k, rounds=args.rounds)))
    except RankstackError as exc:  # no artifact there, or one without item-kNN: say which
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
