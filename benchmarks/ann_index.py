"""ANN recall@k against exact search and single-query latency for the FAISS HNSW / IVF-Flat indexes.

Catalogs (dim 64, inner product):
  gowalla-svd   40,981 Gowalla items: item factors V·√S of a rank-64 truncated SVD of the train matrix;
                queries are users' factors U·√S (structure like trained embeddings, no GPU needed).
  synthetic-1m  1,000,000 items from a 2,000-component Gaussian mixture with log-normal norms;
                queries drawn from the same mixture.
Per catalog, index parameters are picked on held-out *tuning* queries (the cheapest setting with
recall@k ≥ target) and reported on separate *test* queries. Latency = one query per call, one thread.

Usage: python benchmarks/ann_index.py [--items 1000000] [--m 16] [--ef-construction 80] [--data-dir DIR]
HNSW on gowalla-svd: m=48, efC=400, with and without the MIPS→L2 reduction; on the 1M catalog: --m/--ef-construction.
Writes benchmarks/results/ann_index.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import scipy.sparse.linalg as spla

from rankstack.data.loaders import load_dataset
from rankstack.index import ExactIndex, VectorIndex
from rankstack.index.faiss_index import FaissHNSWConfig, FaissHNSWIndex, FaissIVFFlatConfig, FaissIVFFlatIndex
from rankstack.provenance import machine_info

RESULTS = Path(__file__).parent / "results"


def gowalla_svd(data_dir: Path | None, n_queries: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Item and (sampled) user factors of a rank-64 SVD of Gowalla's train matrix."""
    data = load_dataset("gowalla", data_dir)
    x = data.with_events(data.events.filter(data.events["split"] == "train")).interaction_matrix()
    u, s, vt = spla.svds(x, k=64, random_state=seed)
    items = (vt.T * np.sqrt(s)).astype(np.float32)
    users = (u * np.sqrt(s)).astype(np.float32)
    rng = np.random.default_rng(seed)
    return items, users[rng.choice(len(users), n_queries, replace=False)]


def mixture(n_items: int, n_queries: int, seed: int, dim: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian-mixture catalog with unequal norms, and queries from the same mixture."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((2000, dim)).astype(np.float32)

    def draw(n: int) -> np.ndarray:
        v = centres[rng.integers(0, len(centres), n)] + 0.5 * rng.standard_normal((n, dim)).astype(np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        return v * rng.lognormal(0.0, 0.2, (n, 1)).astype(np.float32)

    return draw(n_items), draw(n_queries)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean |found ∩ truth| / k over queries."""
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)]))


def single_query_ms(index: VectorIndex, queries: np.ndarray, k: int) -> tuple[np.ndarray, dict[str, float]]:
    """Search one query per call; (ids, latency mean / p50 / p99 in ms)."""
    ids, times = [], []
    for q in queries:
        t0 = time.perf_counter()
        _, i = index.search(q[None], k)
        times.append(time.perf_counter() - t0)
        ids.append(i[0])
    ms = np.array(times) * 1e3
    return np.array(ids), {"mean_ms": float(ms.mean()), "p50_ms": float(np.median(ms)),
                           "p99_ms": float(np.percentile(ms, 99))}


def sweep(name: str, index: VectorIndex, field: str, values: list[int], tune: np.ndarray, test: np.ndarray,
          truth_tune: np.ndarray, truth_test: np.ndarray, k: int, target: float) -> dict[str, Any]:
    """Pick the smallest setting reaching ``target`` on tuning queries; report it on test queries."""
    rows = []
    chosen = values[-1]
    for v in values:
        setattr(index.config, field, v)
        ids, _ = single_query_ms(index, tune, k)
        r = recall(ids, truth_tune)
        rows.append({field: v, "tune_recall": round(r, 4)})
        if r >= target:
            chosen = v
            break
    setattr(index.config, field, chosen)
    ids, lat = single_query_ms(index, test, k)
    result = {"index": name, field: chosen, "tuning": rows, "test_recall": round(recall(ids, truth_test), 4),
              **{key: round(val, 4) for key, val in lat.items()}}
    print(json.dumps(result), flush=True)
    return result


def run_catalog(label: str, items: np.ndarray, queries: np.ndarray, args: argparse.Namespace,
                hnsw_configs: list[FaissHNSWConfig]) -> dict[str, Any]:
    """Exact ground truth, then HNSW (each config) and IVF-Flat sweeps on one catalog."""
    k, n_tune = args.k, args.tune_queries
    tune, test = queries[:n_tune], queries[n_tune:]
    out: dict[str, Any] = {"catalog": label, "items": len(items), "dim": items.shape[1],
                           "tune_queries": len(tune), "test_queries": len(test)}
    exact = ExactIndex().build(items)
    _, truth_tune = exact.search(tune, k)
    _, truth_test = exact.search(test, k)
    _, lat = single_query_ms(exact, test[:100], k)
    out["exact"] = {key: round(val, 4) for key, val in lat.items()}
    print(label, "exact", out["exact"], flush=True)
    out["hnsw"] = []
    for cfg in hnsw_configs:
        faiss.omp_set_num_threads(args.build_threads)
        t0 = time.perf_counter()
        hnsw = FaissHNSWIndex(cfg).build(items)
        build_s = round(time.perf_counter() - t0, 1)
        faiss.omp_set_num_threads(1)
        name = f"hnsw m={cfg.m} efC={cfg.ef_construction} {'mips→l2' if cfg.mips_to_l2 else 'ip-graph'}"
        res = sweep(name, hnsw, "ef_search", [64, 128, 192, 256, 384, 512, 768], tune, test, truth_tune,
                    truth_test, k, args.target)
        out["hnsw"].append({**res, "build_s": build_s})
        del hnsw
    faiss.omp_set_num_threads(args.build_threads)
    t0 = time.perf_counter()
    ivf = FaissIVFFlatIndex(FaissIVFFlatConfig(nlist=args.nlist if len(items) > 100_000 else 1024)).build(items)
    build_s = round(time.perf_counter() - t0, 1)
    faiss.omp_set_num_threads(1)
    nlist = ivf.index_.nlist if ivf.index_ is not None else 0
    res = sweep(f"ivf-flat nlist={nlist}", ivf, "nprobe", [4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256],
                tune, test, truth_tune, truth_test, k, args.target)
    out["ivf_flat"] = {**res, "build_s": build_s}
    return out


def main() -> None:
    """Run both catalogs, save JSON, print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--m", type=int, default=16)
    parser.add_argument("--ef-construction", type=int, default=80)
    parser.add_argument("--nlist", type=int, default=4096)
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("--tune-queries", type=int, default=200)
    parser.add_argument("--test-queries", type=int, default=500)
    parser.add_argument("--build-threads", type=int, default=2)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    t0 = time.perf_counter()
    n_q = args.tune_queries + args.test_queries
    small = [FaissHNSWConfig(m=48, ef_construction=400, mips_to_l2=flag) for flag in (True, False)]
    catalogs = [run_catalog("gowalla-svd", *gowalla_svd(args.data_dir, n_q, args.seed), args, small)]
    if args.items:
        big = [FaissHNSWConfig(m=args.m, ef_construction=args.ef_construction)]
        catalogs.append(run_catalog(f"synthetic-{args.items}", *mixture(args.items, n_q, args.seed), args, big))
    record = {"command": "python benchmarks/ann_index.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not None),
        "machine": machine_info(), "wall_s": round(time.perf_counter() - t0, 1), "catalogs": catalogs}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ann_index.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"\n| catalog | index | setting | recall@{args.k} | mean ms | p99 ms | build s | exact ms |")
    print("|---|---|---|---|---|---|---|---|")
    for c in catalogs:
        for r, field in [*((h, "ef_search") for h in c["hnsw"]), (c["ivf_flat"], "nprobe")]:
            print(f"| {c['catalog']} | {r['index']} | {field}={r[field]} | {r['test_recall']:.3f} | "
                  f"{r['mean_ms']:.3f} | {r['p99_ms']:.3f} | {r['build_s']:.1f} | {c['exact']['mean_ms']:.2f} |")
    print(f"wall {record['wall_s']} s on {record['machine']}")


if __name__ == "__main__":
    main()
