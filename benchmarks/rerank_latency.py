"""Per-request latency of re-ranking 500 candidates to 20 on this CPU; writes benchmarks/results/rerank_latency.json.

Synthetic catalogue (20,000 items, random 64-d embeddings and 20 categories); one request = one row of 500
distinct candidates with random scores. Each case runs ``--requests`` single-row calls (after a warm-up),
split into ``--rounds`` rounds that interleave the cases, and reports the median, p95 and p99 wall time and
the best round's median (the least disturbed by other processes); one 256-row call gives the batched cost
per row. Also timed: the full YAML pipeline of configs/rules/example.yaml (filters,
boosts, DPP, pins, caps, slot limits, share) on the same requests.

Usage: python benchmarks/rerank_latency.py [--requests 500] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

N_ITEMS, N_CANDS, K, DIM, N_CATS = 20_000, 500, 20, 64, 20
ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def _threads_from_argv() -> int:
    """--threads must be applied before numpy loads its BLAS."""
    argv = sys.argv[1:]
    return int(argv[argv.index("--threads") + 1]) if "--threads" in argv else 1


for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, str(_threads_from_argv()))

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from rankstack.candidates import Candidates  # noqa: E402
from rankstack.provenance import code_version, machine_info  # noqa: E402
from rankstack.reranking import (  # noqa: E402
    DPP,
    MMR,
    DPPConfig,
    ExplanationTrace,
    InMemoryExposureStore,
    ItemCatalog,
    ItemSimilarity,
    MMRConfig,
    RerankContext,
    Reranker,
    RerankPipeline,
)


def _requests(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    ids = np.stack([rng.choice(N_ITEMS, N_CANDS, replace=False) for _ in range(n)])
    return ids, np.sort(rng.random((n, N_CANDS)), axis=1)[:, ::-1].copy()


def _catalog(rng: np.random.Generator) -> ItemCatalog:
    i = np.arange(N_ITEMS)
    table = pl.DataFrame({
        "item_id": i, "category": [f"c{x}" for x in rng.integers(0, N_CATS, N_ITEMS)],
        "advertiser": np.where(i % 50 == 0, "house", np.where(i % 2 == 0, "acme", "globex")),
        "sponsored": i % 10 == 1, "in_stock": i % 23 != 0, "margin": rng.random(N_ITEMS),
        "tags": [["clearance"] if x % 31 == 0 else ["new"] for x in i],
    })
    return ItemCatalog(table, N_ITEMS)


def _one(reranker: Reranker, ids: np.ndarray, scores: np.ndarray, ctx: RerankContext) -> float:
    """Seconds for one ``rerank`` call."""
    cands = Candidates(ids, scores, "b")
    t0 = time.perf_counter()
    reranker.rerank(cands, K, ctx)
    return time.perf_counter() - t0


def _summary(rounds: list[list[float]], batched_s: float, batch: int) -> dict[str, float]:
    """Percentiles over all single-row calls (ms), the best round's median, and the batched cost per row."""
    ms = np.concatenate([np.asarray(r) for r in rounds]) * 1e3
    return {"median_ms": float(np.median(ms)), "p95_ms": float(np.percentile(ms, 95)),
            "p99_ms": float(np.percentile(ms, 99)), "mean_ms": float(ms.mean()),
            "best_round_median_ms": float(min(np.median(r) for r in rounds) * 1e3),
            "batched_ms_per_request": batched_s / batch * 1e3, "requests": int(ms.size)}


def main() -> None:
    """Time MMR, DPP (embedding and category similarity) and the example pipeline; save JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (set before numpy loads)")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds the requests are split into")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    emb = ItemSimilarity.from_embeddings(rng.standard_normal((N_ITEMS, DIM)))
    catalog = _catalog(rng)
    cats = ItemSimilarity.from_categories(catalog.column("category"))
    ids, scores = _requests(rng, args.requests)
    store = InMemoryExposureStore()
    for user in range(64):
        store.record_slate(user, rng.choice(N_ITEMS, 40, replace=False), 1.79e9 - 3600)
    spend = {"acme": 100.0, "globex": 0.0}

    def plain(n: int) -> RerankContext:
        return RerankContext.for_users(np.zeros(n, dtype=np.int64))

    def full(n: int) -> RerankContext:
        return RerankContext.for_users(np.arange(n) % 64, now=1.79e9, exposure=store, spend=spend,
                                       trace=ExplanationTrace())

    pipeline = RerankPipeline.from_yaml(ROOT / "configs" / "rules" / "example.yaml", catalog)
    cases: dict[str, tuple[Reranker, Callable[[int], RerankContext]]] = {
        "mmr_embedding64": (MMR(emb, MMRConfig(relevance_weight=0.7)), plain),
        "dpp_embedding64": (DPP(emb, DPPConfig(relevance_weight=0.7)), plain),
        "mmr_category20": (MMR(cats, MMRConfig(relevance_weight=0.7)), plain),
        "dpp_category20": (DPP(cats, DPPConfig(relevance_weight=0.7)), plain),
        "pipeline_example_yaml_dpp": (pipeline, full),
    }
    # rounds interleave the cases so that load from other processes falls on all of them alike
    times: dict[str, list[list[float]]] = {name: [] for name in cases}
    per_round = max(1, args.requests // args.rounds)
    for reranker, ctx in cases.values():
        for r in range(20):  # warm-up
            reranker.rerank(Candidates(ids[r : r + 1], scores[r : r + 1], "b"), K, ctx(1))
    for rnd in range(args.rounds):
        rows = range(rnd * per_round, (rnd + 1) * per_round)
        for name, (reranker, ctx) in cases.items():
            times[name].append([_one(reranker, ids[r : r + 1], scores[r : r + 1], ctx(1)) for r in rows])
    batch = min(256, ids.shape[0])
    results = {}
    for name, (reranker, ctx) in cases.items():
        batched = _one(reranker, ids[:batch], scores[:batch], ctx(batch))
        results[name] = _summary(times[name], batched, batch)
    record = {
        "benchmark": "rerank_latency",
        "command": "python benchmarks/rerank_latency.py " + " ".join(sys.argv[1:]),
        "setup": {"n_items": N_ITEMS, "candidates": N_CANDS, "k": K, "embedding_dim": DIM, "categories": N_CATS,
                  "blas_threads": args.threads, "pipeline_config": "configs/rules/example.yaml (depth 30, 12 rules)"},
        "targets_ms": {"mmr": 1.0, "dpp": 3.0},
        "results": results,
        "machine": machine_info(),
        "code": code_version(),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "wall_s": round(time.perf_counter() - start, 1),
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "rerank_latency.json").write_text(json.dumps(record, indent=2) + "\n")
    for name, r in results.items():
        print(f"{name:26s} median {r['median_ms']:.3f} ms  p95 {r['p95_ms']:.3f}  p99 {r['p99_ms']:.3f}  "
              f"best-round median {r['best_round_median_ms']:.3f}  batched {r['batched_ms_per_request']:.3f} ms/row")
    print(f"wall {record['wall_s']} s; {machine_info()['cpu']} ({os.cpu_count()} cores); load average "
          f"{os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
