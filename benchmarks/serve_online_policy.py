"""The 300 req/s check with an online-learning exploration stage (issue 18): p99 and errors under load while
feedback streams in, then the learned state of every worker compared.

Builds a synthetic log (users with a home category, Zipf popularity), trains popular + item-kNN → MMR +
frequency cap → ``--policy`` (LinUCB by default) over a 40-item pool, k = 20, and serves it with
``python -m rankstack.serving --workers 2`` on SQLite state. ``wrk`` offers ``--rate`` recommend requests/s for
``--duration`` s (the pause per connection calibrated on a warm-up, as ``serve_load.py`` does) while a feedback
thread serves its own slates and posts their impressions, with clicks on items of the user's home category,
at ``--feedback-rps`` slates/s. Afterwards it waits until every worker has folded the whole log and checks that
``/v1/policy`` reports the same statistics digest on each. Writes
``benchmarks/results/serve_online_policy-<policy>.json``; ``--policy epsilon_greedy`` runs the same pipeline
without learning, as the baseline.

Usage: python benchmarks/serve_online_policy.py [--items 10000] [--rate 300] [--duration 20] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
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
from rankstack.pipeline.config import validate_pipeline_config

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
CATEGORIES = 100
LUA = """
math.randomseed(%(seed)d)
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  return wrk.format(nil, "/v1/recommend", nil, string.format('{"user_id":"u%%d","k":20}', math.random(0, %(users)d)))
end
delay = function() return %(wait_ms)d end
done = function(s, lat, req)
  io.write(string.format('WRK {"requests":%%d,"duration_us":%%d,"errors":%%d,"p50":%%d,"p99":%%d,"max":%%d,' ..
    '"mean":%%.1f}\\n', s.requests, s.duration, s.errors.connect + s.errors.read + s.errors.write +
    s.errors.status + s.errors.timeout, lat:percentile(50), lat:percentile(99), lat.max, lat.mean))
end
"""


def home(user: int) -> int:
    """The user's home category (items of category c are c·per_cat … (c+1)·per_cat − 1)."""
    return (user * 7919) % CATEGORIES


def build(args: argparse.Namespace, workdir: Path) -> Path:
    """Train and save the artifact on the synthetic log."""
    rng = np.random.default_rng(args.seed)
    per_cat = args.items // CATEGORIES
    users = np.repeat(np.arange(args.users), args.per_user)
    own = np.array([home(u) for u in range(args.users)])[users] * per_cat + np.minimum(
        rng.zipf(1.3, users.size) - 1, per_cat - 1)
    items = np.where(rng.random(users.size) < 0.7, own, rng.integers(0, args.items, users.size))
    items = np.concatenate([items, np.arange(args.items)])  # every item appears once (catalog-only users)
    users = np.concatenate([users, args.users + np.arange(args.items) // 5])
    events = pl.DataFrame({"user_id": np.char.add("u", users.astype(str)),
                           "item_id": np.char.add("i", items.astype(str)),
                           "timestamp": 1_700_000_000 + np.arange(users.size)}).unique(
        subset=["user_id", "item_id"], keep="first", maintain_order=True)
    features = pl.DataFrame({"item_id": [f"i{j}" for j in range(args.items)],
                             "category": [f"c{j // per_cat}" for j in range(args.items)]})
    data = Dataset.from_events(events, name="synthetic", item_features=features)
    config = validate_pipeline_config({
        "name": "online-policy", "data": {"name": "synthetic"},
        "sources": [{"name": "popular", "k": 100, "quota": 20},
                    {"name": "itemknn", "settings": {"neighbors": 50}, "k": 300, "quota": 150}],
        "merge": {"k": 300},
        "rerank": {"diversity": {"method": "mmr", "relevance_weight": 0.8}, "similarity": {"attribute": "category"},
                   "depth": 40, "rules": [{"name": "cap", "type": "frequency_cap", "max_count": 3, "window_days": 1}]},
        "exploration": {"policy": args.policy, "pool": 40, "seed": 0,
                        **({"learning": {"dim": 8}} if args.policy != "epsilon_greedy" else {})},
    })
    parts = fit_stages(config, data, lambda m: print("  " + m, flush=True))
    manifest = {"version": "online-policy-0001", "name": "online-policy", "created_at": datetime.now(UTC).isoformat(),
                "config": config.model_dump(mode="json"), "data": {"name": "synthetic"}, "metrics": {"pipeline": {}}}
    return save_artifact(parts, manifest, workdir / "artifact", overwrite=True)


def free_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def feedback(url: str, args: argparse.Namespace, stop: threading.Event, counts: dict[str, int]) -> None:
    """Serve slates and post their impressions, clicking (p = 0.3) items of the user's home category."""
    rng = np.random.default_rng(args.seed + 2)
    per_cat = args.items // CATEGORIES
    with httpx.Client(base_url=url, timeout=10) as http:
        n = 0
        while not stop.is_set():
            started = time.perf_counter()
            user = int(rng.integers(0, args.users))
            slate = http.post("/v1/recommend", json={"user_id": f"u{user}", "k": 20, "request_id": f"fb{n}"}).json()
            events = []
            for slot, item in enumerate(slate["items"]):
                base = {"user_id": f"u{user}", "item_id": item["item_id"], "request_id": f"fb{n}"}
                events.append({**base, "event_id": f"fb{n}-{slot}-i", "event": "impression",
                               "propensity": item["propensity"]})
                if int(item["item_id"][1:]) // per_cat == home(user) and rng.random() < 0.3:
                    events.append({**base, "event_id": f"fb{n}-{slot}-c", "event": "click"})
            response = http.post("/v1/events", json={"events": events})
            counts["posted" if response.status_code == 200 else "failed"] += len(events)
            n += 1
            stop.wait(max(0.0, 1.0 / args.feedback_rps - (time.perf_counter() - started)))


def run_wrk(url: str, args: argparse.Namespace, seconds: int, wait_ms: int, workdir: Path) -> dict[str, Any]:
    """One wrk run at ``--connections`` connections pausing ``wait_ms`` between requests; latencies in ms."""
    script = workdir / "recommend.lua"
    script.write_text(LUA % {"seed": args.seed, "users": int(args.users * 1.05), "wait_ms": wait_ms})
    cmd = ["wrk", "-t1", f"-c{args.connections}", f"-d{seconds}s", "--timeout", "5s", "-s", str(script), url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    match = re.search(r"WRK (\{.*\})", out)
    if match is None:
        raise RuntimeError(f"no summary in wrk output:\n{out}")
    raw = json.loads(match.group(1))
    return {"requests": raw["requests"], "rps": round(raw["requests"] / (raw["duration_us"] / 1e6), 1),
            "errors": raw["errors"], **{f"{k}_ms": round(raw[k] / 1000, 2) for k in ("p50", "p99", "max", "mean")},
            "wait_ms": wait_ms, "command": " ".join(cmd)}


def stage_sums(url: str) -> dict[str, tuple[float, float]]:
    """(sum s, count) of each pipeline stage's duration histogram, over all workers (/metrics)."""
    text = httpx.get(url + "/metrics", timeout=10).text
    sums = dict(re.findall(r'rankstack_stage_duration_seconds_sum\{stage="([^"]+)"\} (\S+)', text))
    counts = dict(re.findall(r'rankstack_stage_duration_seconds_count\{stage="([^"]+)"\} (\S+)', text))
    return {k: (float(sums[k]), float(counts[k])) for k in sums if k in counts}


def worker_states(url: str, workers: int) -> dict[str, dict[str, Any]]:
    """``/v1/policy`` of each worker (fresh connections until each has answered)."""
    seen: dict[str, dict[str, Any]] = {}
    for _ in range(200):
        response = httpx.get(url + "/v1/policy", timeout=5, headers={"Connection": "close"})
        seen[response.headers.get("x-rankstack-worker", "single")] = response.json()
        if len(seen) == workers:
            break
    return seen


def main() -> None:
    """Build, serve, load, compare the workers' states, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--per-user", type=int, default=30)
    parser.add_argument("--policy", default="linucb",
                        choices=["linucb", "lints", "squarecb", "bernoulli_ts", "ridge_epsilon_greedy",
                                 "epsilon_greedy"],
                        help="epsilon_greedy: the same pipeline without learning (the baseline)")
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--feedback-rps", type=float, default=20.0, help="slates/s whose feedback is posted")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not on PATH: apt-get install wrk")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="rankstack-online-policy-"))
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    artifact = build(args, workdir)
    build_s = time.perf_counter() - t0
    port, env = free_port(), {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    url = f"http://127.0.0.1:{port}"
    with (workdir / "server.log").open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "rankstack.serving", str(artifact), "--port", str(port),
                                 "--state", f"sqlite:{workdir / 'state.db'}", "--workers", str(args.workers)],
                                env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError((workdir / "server.log").read_text()[-2000:])
            time.sleep(0.2)
        period_ms = 1000.0 * args.connections / args.rate
        warm = run_wrk(url, args, args.warmup, int(period_ms * 0.9), workdir)
        counts = {"posted": 0, "failed": 0}
        stop = threading.Event()
        poster = threading.Thread(target=feedback, args=(url, args, stop, counts))
        poster.start()
        before = stage_sums(url)
        load = run_wrk(url, args, args.duration, max(0, round(period_ms - warm["mean_ms"])), workdir)
        after = stage_sums(url)
        stop.set()
        poster.join()
        stage_ms = {k: round(1000 * (v - before.get(k, (0.0, 0.0))[0]) / (n - before.get(k, (0.0, 0.0))[1]), 3)
                    for k, (v, n) in after.items() if n > before.get(k, (0.0, 0.0))[1]}
        waited = time.perf_counter()
        states = worker_states(url, args.workers) if args.policy != "epsilon_greedy" else {}
        while (states and len({s["digest"] for s in states.values()}) != 1) or any(
                s["events"] < counts["posted"] for s in states.values()):
            if time.perf_counter() - waited > 60:
                break
            time.sleep(0.5)
            states = worker_states(url, args.workers)
        converge_s = time.perf_counter() - waited
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    digests = {s["digest"] for s in states.values()}
    result = {"policy": args.policy, "items": args.items, "users": args.users, "workers": args.workers,
              "target_rps": args.rate, "load": load, "warmup": warm, "stage_mean_ms": stage_ms,
              "feedback_events": counts,
              "worker_states": states, "identical_state": len(digests) == 1 and len(states) == args.workers,
              "converged_after_s": round(converge_s, 2), "build_s": round(build_s, 1),
              "loadavg_after": os.getloadavg(), "cores": os.cpu_count(),
              "date": datetime.now(UTC).isoformat(timespec="seconds")}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"serve_online_policy-{args.policy}.json").write_text(json.dumps(result, indent=2))
    shown = ("load", "stage_mean_ms", "feedback_events", "identical_state", "converged_after_s", "loadavg_after")
    print(json.dumps({k: result[k] for k in shown}, indent=2))


if __name__ == "__main__":
    main()
