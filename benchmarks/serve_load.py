"""HTTP load on loopback: the full pipeline served by ``python -m rankstack.serving``, driven by ``wrk``.

Per catalog size (``--items``, e.g. ``41000`` or ``10000,100000,1000000``): build a synthetic interaction log
(Zipf item popularity, users with a home category; every item also appears once with one of a set of catalog-
only users, ``--cover-group`` items each), train a pipeline (popular + item-kNN merged to ``--merge-k`` candidates, the
SASRec transformer re-scoring them when registered, or with ``--ranker lambdarank`` the learned LightGBM ranker
over candidate features, MMR + a frequency cap re-ranking to k=20, epsilon-greedy
exploration), save the artifact, start the server on loopback with SQLite state, post a few thousand events,
warm up, then run ``wrk`` (one thread, ``--connections`` connections, each pausing between requests so that
the offered load is as asked; the pause is calibrated on the warm-up's mean latency), once per
offered load in ``--rates``. Reports p50 / p90 / p99 / p99.9 latency, achieved throughput, errors and the
server's own per-stage means (from /metrics), and writes ``benchmarks/results/serve_load-<items>.json``.

wrk measures latency from sending a request to its response on an open connection; a request that waits
for its connection's previous one is not counted as waiting (no coordinated-omission correction).

Usage: python benchmarks/serve_load.py [--items 41000] [--rates 100,300] [--duration 30]
       [--ranker sasrec|lambdarank|none]
       [--workers 2]
Needs ``wrk`` on PATH (``apt-get install wrk``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import polars as pl

from rankstack.data.dataset import Dataset
from rankstack.experiments.pipeline_training import fit_stages
from rankstack.pipeline.artifact import save_artifact
from rankstack.pipeline.components import names
from rankstack.pipeline.config import validate_pipeline_config

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
N_CATEGORIES = 100

WRK_SCRIPT = """
math.randomseed(%(seed)d)
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  local u = math.random(0, %(user_space)d - 1)
  return wrk.format(nil, "/v1/recommend", nil, string.format('{"user_id":"u%%d","k":%(k)d}', u))
end
delay = function() return %(wait_ms)d end
done = function(s, lat, req)
  io.write(string.format('WRK_JSON {"requests":%%d,"duration_us":%%d,"connect":%%d,"read":%%d,"write":%%d,' ..
    '"status":%%d,"timeout":%%d,"p50_us":%%d,"p90_us":%%d,"p99_us":%%d,"p999_us":%%d,"max_us":%%d,' ..
    '"mean_us":%%.1f}\\n', s.requests, s.duration, s.errors.connect, s.errors.read, s.errors.write,
    s.errors.status, s.errors.timeout, lat:percentile(50), lat:percentile(90), lat:percentile(99),
    lat:percentile(99.9), lat.max, lat.mean))
end
"""


def synthetic_log(n_items: int, n_users: int, per_user: int, seed: int,
                  cover_group: int = 5) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Events (user, item, time) and item categories: 70% of a user's items from a home category, 30% by
    global Zipf popularity; every item appears at least once (with a catalog-only user) so the catalog
    really has ``n_items`` items."""
    rng = np.random.default_rng(seed)
    per_cat = n_items // N_CATEGORIES
    home = rng.integers(0, N_CATEGORIES, n_users)
    users = np.repeat(np.arange(n_users), per_user)
    local = np.minimum(rng.zipf(1.3, users.size) - 1, per_cat - 1)
    own = home[users] * per_cat + local
    popularity = 1.0 / np.arange(1, n_items + 1) ** 1.1
    shuffled = rng.permutation(n_items)
    global_pick = shuffled[rng.choice(n_items, users.size, p=popularity / popularity.sum())]
    items = np.where(rng.random(users.size) < 0.7, own, global_pick)
    cover_items = np.arange(n_items)
    cover_users = n_users + cover_items // cover_group  # catalog-only users (never sent requests)
    all_users = np.concatenate([users, cover_users])
    all_items = np.concatenate([items, cover_items])
    events = pl.DataFrame({
        "user_id": np.char.add("u", all_users.astype(str)),
        "item_id": np.char.add("i", all_items.astype(str)),
        "timestamp": 1_700_000_000 + np.arange(all_users.size, dtype=np.int64),
    }).unique(subset=["user_id", "item_id"], keep="first", maintain_order=True)
    features = pl.DataFrame({"item_id": [f"i{j}" for j in range(n_items)],
                             "category": [f"c{min(j // max(per_cat, 1), N_CATEGORIES - 1)}" for j in range(n_items)]})
    return events, features


def pipeline_config(args: argparse.Namespace) -> dict[str, Any]:
    """Popular + item-kNN (or SASRec) → merge → (SASRec) → MMR + frequency cap → epsilon-greedy, k up to 20."""
    sasrec = {"max_len": 50, "hidden_dim": 64, "blocks": 2, "epochs": 1, "sampled_negatives": 100,
              "validation": False, "batch_size": 256, "time_budget_s": args.ranker_budget_s, "device": "cpu"}
    second = ({"name": "itemknn", "settings": {"neighbors": 50}} if args.retrieval == "itemknn"
              else {"name": "sasrec", "settings": sasrec,
                    **({"index": {"kind": args.index, "params": args.index_params}} if args.index else {})})
    config: dict[str, Any] = {
        "name": "serve-load", "data": {"name": "synthetic"},
        "sources": [{"name": "popular", "k": 100, "quota": 20},
                    {**second, "k": args.merge_k, "quota": args.merge_k // 2}],
        "merge": {"k": args.merge_k},
        "rerank": {"diversity": {"method": "mmr", "relevance_weight": 0.8}, "similarity": {"attribute": "category"},
                   "depth": 40, "rules": [{"name": "cap", "type": "frequency_cap", "max_count": 3, "window_days": 1}]},
        "exploration": {"policy": "epsilon_greedy", "epsilon": 0.05, "pool": 40, "seed": 0},
        "deadlines_ms": {"retrieval": 200, "ranker": 100, "rerank": 50},
    }
    if args.ranker == "lambdarank":  # the learned ranker over candidate features (issue 16), on a sample of users
        config["ranker"] = {"kind": "lambdarank", "label_events": 5, "label_windows": 3, "validation_events": 1,
                            "attribute": "category", "max_users": 3000}
    elif args.ranker != "none":  # a ranker naming a source without settings reuses that fitted source
        same = args.ranker == args.retrieval
        config["ranker"] = {"source": args.ranker, "history": 50, "settings": {} if same else sasrec}
        if args.state_cache is not None:
            config["ranker"]["state_cache"] = args.state_cache
    return config


def build_artifact(n_items: int, args: argparse.Namespace, workdir: Path) -> tuple[Path, dict[str, Any]]:
    """Train the pipeline on the synthetic log and save it; returns the artifact and build facts."""
    t0 = time.perf_counter()
    events, features = synthetic_log(n_items, args.users, args.per_user, args.seed, args.cover_group)
    data = Dataset.from_events(events, name="synthetic", item_features=features)
    t1 = time.perf_counter()
    config = validate_pipeline_config(pipeline_config(args))
    parts = fit_stages(config, data, lambda m: print("  " + m, flush=True))
    t2 = time.perf_counter()
    manifest = {"version": f"serve-load-{n_items}", "name": "serve-load", "created_at": datetime.now(UTC).isoformat(),
                "config": config.model_dump(mode="json"), "data": {"name": "synthetic"}, "metrics": {"pipeline": {}}}
    out = save_artifact(parts, manifest, workdir / f"artifact-{n_items}", overwrite=True)
    facts = {"items": data.n_items, "users": data.n_users, "events": len(data), "data_s": round(t1 - t0, 1),
             "fit_s": round(t2 - t1, 1), "save_s": round(time.perf_counter() - t2, 1)}
    return out, facts


def free_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(artifact: Path, workdir: Path, port: int, workers: int = 1,
                 batch_wait_ms: float = 0.0, batcher: str = "loop") -> subprocess.Popen[bytes]:
    """``python -m rankstack.serving`` with one torch thread per worker process."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    state = workdir / f"state-{port}.db"
    log = (workdir / f"server-{port}.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "rankstack.serving", str(artifact), "--port", str(port),
                             "--state", f"sqlite:{state}", *(["--workers", str(workers)] if workers > 1 else []),
                             *(["--batch-wait-ms", str(batch_wait_ms)] if batch_wait_ms else []),
                             "--batcher", batcher],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {(workdir / f'server-{port}.log').read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not become ready in 300 s")


def seed_state(url: str, n_users: int, n_items: int, n_events: int, seed: int) -> None:
    """Post clicks and impressions (batches of 500) so requests read a non-empty online state."""
    rng = np.random.default_rng(seed + 1)
    now = time.time()
    with httpx.Client(base_url=url, timeout=30) as http:
        for start in range(0, n_events, 500):
            batch = [{"event_id": f"seed-{i}", "user_id": f"u{rng.integers(n_users)}",
                      "item_id": f"i{rng.integers(n_items)}", "event": "click" if i % 3 == 0 else "impression",
                      "timestamp": now - 60} for i in range(start, min(start + 500, n_events))]
            http.post("/v1/events", json={"events": batch}).raise_for_status()


def run_wrk(url: str, args: argparse.Namespace, duration_s: int, wait_ms: int, workdir: Path) -> dict[str, Any]:
    """One wrk run; returns its summary (latencies in ms) parsed from the script's JSON line."""
    script = workdir / "recommend.lua"
    user_space = int(args.users * 1.05)  # ~5% of requests come from users the model has never seen
    script.write_text(WRK_SCRIPT % {"seed": args.seed, "user_space": user_space, "k": args.k, "wait_ms": wait_ms})
    cmd = ["wrk", "-t1", f"-c{args.connections}", f"-d{duration_s}s", "--timeout", "5s", "-s", str(script), url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    match = re.search(r"WRK_JSON (\{.*\})", out)
    if match is None:
        raise RuntimeError(f"no summary in wrk output:\n{out}")
    raw = json.loads(match.group(1))
    seconds = raw["duration_us"] / 1e6
    errors = {k: raw[k] for k in ("connect", "read", "write", "status", "timeout")}
    return {"requests": raw["requests"], "throughput_rps": round(raw["requests"] / seconds, 1),
            "errors": errors, "error_total": sum(errors.values()),
            **{f"{p}_ms": round(raw[f"{p}_us"] / 1000, 2) for p in ("p50", "p90", "p99", "p999", "max", "mean")},
            "wait_ms": wait_ms, "command": " ".join(cmd)}


def server_counters(url: str) -> dict[str, tuple[float, float]]:
    """(sum, count) of each stage histogram and of the batch-size histogram, from the server's /metrics."""
    text = httpx.get(url + "/metrics").text
    out = {}
    for name, label in (("rankstack_stage_duration_seconds", r'\{stage="([^"]+)"\}'),
                        ("rankstack_recommend_batch_size", r"()")):
        sums = dict(re.findall(name + "_sum" + label + r" (\S+)", text))
        counts = dict(re.findall(name + "_count" + label + r" (\S+)", text))
        out.update({(key or "batch_size"): (float(sums[key]), float(counts[key])) for key in sums})
    return out


def degradations(url: str) -> dict[str, float]:
    """Stage degradations and fallbacks counted by the server so far (``stage/status`` and ``fallback:name``)."""
    text = httpx.get(url + "/metrics").text
    found = {f"{stage}/{status}": float(n) for stage, status, n in re.findall(
        r'rankstack_stage_degradations_total\{stage="([^"]+)",status="([^"]+)"\} (\S+)', text)}
    found.update({f"fallback:{name}": float(n) for name, n in re.findall(
        r'rankstack_fallbacks_total\{fallback="([^"]+)"\} (\S+)', text)})
    return found


def counter_means(before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]]) -> dict[str, float]:
    """Mean per observation between two readings: stage times in ms per batch, batch size in requests."""
    means = {}
    for key, (total, count) in after.items():
        total0, count0 = before.get(key, (0.0, 0.0))
        if count > count0:
            scale = 1.0 if key == "batch_size" else 1000.0
            means[key] = round(scale * (total - total0) / (count - count0), 3)
    return means


def measure(n_items: int, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Build, serve, seed, warm up, calibrate, measure one catalog size."""
    print(f"catalog {n_items:,} items: training …", flush=True)
    artifact = workdir / f"artifact-{n_items}"
    if args.reuse and (artifact / "manifest.json").is_file():
        facts = json.loads((workdir / f"build-{n_items}.json").read_text())
    else:
        artifact, facts = build_artifact(n_items, args, workdir)
        (workdir / f"build-{n_items}.json").write_text(json.dumps(facts))
    print(f"  built: {facts}", flush=True)
    if args.build_only:
        return {"catalog_items": n_items, "build": facts}
    port = free_port()
    t0 = time.perf_counter()
    proc = start_server(artifact, workdir, port, args.workers, args.batch_wait_ms, args.batcher)
    startup_s = time.perf_counter() - t0
    url = f"http://127.0.0.1:{port}"
    rows = []
    try:
        seed_state(url, args.users, n_items, args.seed_events, args.seed)
        for rate in (float(r) for r in args.rates.split(",")):
            period_ms = 1000.0 * args.connections / rate
            warm = run_wrk(url, args, args.warmup, int(period_ms * 0.9), workdir)
            wait_ms = max(0, round(period_ms - warm["mean_ms"]))
            before, degraded_before = server_counters(url), degradations(url)
            result = run_wrk(url, args, args.duration, wait_ms, workdir)
            degraded = {k: v - degraded_before.get(k, 0.0) for k, v in degradations(url).items()}
            rows.append({"catalog_items": n_items, "target_rps": rate, **result, "warmup": warm,
                         "server_means": counter_means(before, server_counters(url)),
                         "degradations": {k: v for k, v in degraded.items() if v}})
            print(f"  {rate:g} req/s offered: p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, "
                  f"{result['throughput_rps']} req/s, errors {result['error_total']}", flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    row = {"catalog_items": n_items, "runs": rows, "server_startup_s": round(startup_s, 1), "build": facts}
    return row


def main() -> None:
    """Parse options, measure each catalog size, write one JSON per size."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", default="41000", help="comma-separated catalog sizes")
    parser.add_argument("--users", type=int, default=30_000)
    parser.add_argument("--per-user", type=int, default=30)
    parser.add_argument("--cover-group", type=int, default=5, help="items per catalog-only user")
    parser.add_argument("--merge-k", type=int, default=300)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--ranker", default="sasrec" if "sasrec" in names("source") else "none")
    parser.add_argument("--retrieval", default="itemknn", choices=["itemknn", "sasrec"],
                        help="second source next to popular (item-kNN's fit is quadratic in the catalog)")
    parser.add_argument("--ranker-budget-s", type=float, default=120.0)
    parser.add_argument("--rates", default="300", help="comma-separated offered loads (requests/s), one run each")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1, help="server worker processes (rankstack serve --workers)")
    parser.add_argument("--tag", default="", help="suffix of the results file (keeps earlier runs)")
    parser.add_argument("--batch-wait-ms", type=float, default=0.0, help="server micro-batch fill wait")
    parser.add_argument("--batcher", choices=["loop", "thread"], default="loop", help="where the server runs batches")
    parser.add_argument("--index", choices=["exact", "hnsw", "ivf-flat"], default=None,
                        help="with --retrieval sasrec: serve its retrieval from this vector index")
    parser.add_argument("--index-params", type=json.loads, default={}, help='JSON, e.g. \'{"nlist": 4096}\'')
    parser.add_argument("--duration", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--seed-events", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--reuse", action="store_true", help="reuse artifacts already built in --workdir")
    parser.add_argument("--state-cache", type=int, default=None,
                        help="ranker.state_cache of a new artifact (0: the transformer runs on every request)")
    parser.add_argument("--build-only", action="store_true", help="build the artifacts in --workdir, serve nothing")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not on PATH: apt-get install wrk")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="rankstack-serve-load-"))
    workdir.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for n_items in (int(x) for x in args.items.split(",")):
        row = measure(n_items, args, workdir)
        if args.build_only:
            continue
        row.update({"code": _git_head(), "ranker": args.ranker, "retrieval": args.retrieval, "merge_k": args.merge_k,
                    "k": args.k, "workers": args.workers, "batch_wait_ms": args.batch_wait_ms, "batcher": args.batcher,
                    "index": args.index,
                    "index_params": args.index_params,
                    "connections": args.connections, "users": args.users,
                    "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                                "loadavg_after": os.getloadavg()},
                    "date": datetime.now(UTC).isoformat(timespec="seconds"),
                    "command": "python benchmarks/serve_load.py " + " ".join(sys.argv[1:])})
        suffix = ("" if args.retrieval == "itemknn" else f"-{args.retrieval}") + (
            f"-w{args.workers}" if args.workers > 1 else "") + (f"-{args.tag}" if args.tag else "")
        (RESULTS / f"serve_load-{n_items}{suffix}.json").write_text(json.dumps(row, indent=2) + "\n")
    print(f"total wall time {time.perf_counter() - started:.0f} s; results in {RESULTS}", flush=True)


def _git_head() -> str:
    """The checked-out commit, with ``-dirty`` when the tree has uncommitted changes ("unknown" outside git)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


if __name__ == "__main__":
    main()
