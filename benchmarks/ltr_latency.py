"""The learned ranker's cost per request in process: ``ranker.score`` (features + LightGBM predict, one thread) on
single-user requests of C merged candidates, from a trained artifact.

Loads ARTIFACT, widens its merge to C candidates (each source retrieves at least C, quotas scaled by C / merge.k),
takes the candidates of ``--users`` known users one request at a time and times the ranker alone (the retrieval
is outside the clock). Prints median, p90 and p99 in milliseconds per C.

Usage: python benchmarks/ltr_latency.py ARTIFACT [--candidates 200,300] [--users 200]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from rankstack.pipeline.pipeline import Pipeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifact", type=Path)
    parser.add_argument("--candidates", default="200,300")
    parser.add_argument("--users", type=int, default=200)
    args = parser.parse_args()
    base = Pipeline.load(args.artifact)
    ranker = base.parts.ranker
    if ranker is None:
        raise SystemExit(f"{args.artifact}: the pipeline has no ranker")
    users = np.random.default_rng(0).choice(len(base.parts.user_map), size=args.users, replace=False)
    out: dict[str, object] = {"artifact": str(args.artifact), "ranker": ranker.name, "loadavg": os.getloadavg()}
    for c in (int(x) for x in args.candidates.split(",")):
        config = base.config
        scale = c / config.merge.k
        sources = [s.model_copy(update={"k": max(s.k, c), "quota": int(s.quota * scale)}) for s in config.sources]
        wide = config.model_copy(update={"sources": sources, "merge": config.merge.model_copy(update={"k": c})})
        pipeline = Pipeline(replace(base.parts, config=wide))
        times, sizes = [], []
        for u in users:
            batch = pipeline.rank_inputs(np.array([u]), 20)
            t0 = time.perf_counter()
            ranker.score(batch)
            times.append(1000 * (time.perf_counter() - t0))
            sizes.append(int((batch.item_ids >= 0).sum()))
        row = {"median_ms": round(float(np.median(times)), 3), "p90_ms": round(float(np.percentile(times, 90)), 3),
               "p99_ms": round(float(np.percentile(times, 99)), 3), "mean_candidates": round(float(np.mean(sizes)), 1)}
        out[f"C={c}"] = row
        print(f"C={c}: {row}", flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
