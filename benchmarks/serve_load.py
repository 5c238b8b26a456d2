"""HTTP load on loopback: the full pipeline served by ``python -m rankstack.serving``, under open-loop load (default)
or driven by ``wrk`` (``--generator wrk``, the earlier closed-loop view).

Per catalog size (``--items``, e.g. ``41000`` or ``10000,100000,1000000``): build a synthetic interaction log
(Zipf item popularity, users with a home category; every item also appears once with one of a set of catalog-
only users, ``--cover-group`` items each), train a pipeline (popular + item-kNN merged to ``--merge-k`` candidates, the
SASRec transformer re-scoring them when registered, or with ``--ranker lambdarank`` the learned LightGBM ranker
over candidate features, MMR + a frequency cap re-ranking to k=20, epsilon-greedy
exploration, or with ``--policy linucb`` (or another learning policy) an exploration stage that learns online from
the events the service receives) and save the artifact — in a process of its own, so the one that drives the load
carries nothing of the build — then start the server on loopback with SQLite state, post a few
thousand events, warm up, then measure once per offered load in ``--rates`` (× each share in ``--fresh-events``).
With a learning policy the fresh events are its feedback (clicks reward the item clicked, ``--fresh-kind
impression`` counts pulls), and after each run every worker's ``GET /v1/policy`` is read until they agree
(``policy_state`` in the run: each worker's cursor, events and statistics digest, and whether they are identical).

The two views:

* ``--generator open`` (default): an open-loop generator (``benchmarks/open_loop.py``, one uvloop process, raw
  keep-alive HTTP/1.1 on a pool of connections). Requests start on a fixed schedule at the offered rate whatever
  the answers, and latency counts from the *scheduled* start, so time spent queueing anywhere (no free connection,
  a busy server) is measured — no coordinated omission. ``--fresh-events S``: that share of recommends is preceded
  by a fresh click for the same user, posted to ``/v1/events`` first (the traffic mix: ``benchmarks/serve_mix.py``).
  Reports offered and achieved rate, p50 / p90 / p99 / p99.9 / max of the answered recommends, errors (non-2xx
  other than 503, timeouts, connection failures), ``degraded`` slates (a stage degraded or failed, or a fallback),
  ``shed`` (503 answers), the events' latency, and the generator's own CPU and launch lag.
  ``--overload-factor F --overload-duration S``: after the ``--duration`` at the rate, offer F× the rate for S s,
  then the rate again for ``--duration`` s; reports the share shed, the p99 of the requests answered during the
  overload, and the recovery time (``serve_mix.overload_figures``). ``--endpoint healthz`` drives ``GET /healthz``
  instead: the generator's and the HTTP stack's floor. With ``--stamp`` each request carries ``X-Request-Start:
  t=<when it was sent>`` and the server is started with ``--request-start-header X-Request-Start``, as behind a
  front proxy that stamps requests, so the server counts deadlines (shedding, stage budgets) from when a request
  was sent rather than from when it read it (time in the socket queue included); off by default.
* ``--generator wrk``: ``wrk`` (one thread, ``--connections`` connections, each pausing between requests so that the
  offered load is as asked; the pause is calibrated on the warm-up's mean latency). wrk measures latency from
  sending a request to its response on an open connection; a request that waits for its connection's previous
  one is not counted as waiting (closed loop: coordinated omission), and it sends no events.

Both report the server's own per-stage means (from /metrics) and write
``benchmarks/results/serve_load-<items>[-<retrieval>][-w<workers>][-open][-<tag>].json`` (``--plot``: a PNG of p99
against the offered rate, one line per fresh-event share, next to it). ``--json`` prints one JSON object
(``{"runs": [...], ...}``) on stdout and everything else on stderr.

Usage: python benchmarks/serve_load.py [--items 41000] [--rates 100,300] [--duration 30] [--workers 2]
       [--fresh-events 0,0.5,1] [--overload-factor 3 --overload-duration 30] [--json] [--plot]
       [--generator open|wrk] [--ranker sasrec|lambdarank|none] [--policy epsilon_greedy|linucb|…]
       [--workdir DIR --reuse] [--state-cache N] [--candidate-cache-mb MB] [--[no-]pin-workers]
       [--no-balance-workers]
With ``--workers`` 2 or more each worker is pinned to a core (``rankstack serve --pin-workers``) unless
``--no-pin-workers``.
The wrk view needs ``wrk`` on PATH (``apt-get install wrk``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling modules open_loop and serve_mix

from open_loop import Pool, arrival_offsets, drive
from open_loop import run as run_loop
from serve_mix import HEALTH, RECOMMEND, Mix, Traffic, overload_figures, summarise

from rankstack.data.dataset import Dataset
from rankstack.errors import ConfigError
from rankstack.experiments.pipeline_training import fit_stages
from rankstack.pipeline.artifact import save_artifact
from rankstack.pipeline.components import names
from rankstack.pipeline.config import validate_pipeline_config
from rankstack.serving.settings import DEFAULT_BATCH_WAIT_MS

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
N_CATEGORIES = 100
LEARNING_POLICIES = ("linucb", "lints", "squarecb", "bernoulli_ts", "ridge_epsilon_greedy")
STAMP_HEADER = "X-Request-Start"  # what nginx/HAProxy/Heroku's router add: when the front received the request
POLICY_SETTLE_S = 60.0  # after a run, how long to wait for every worker's policy state to agree

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
    """Popular + item-kNN (or SASRec) → merge → (SASRec) → MMR + frequency cap → epsilon-greedy (or ``--policy``,
    learning online), k up to 20."""
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
        "exploration": ({"policy": "epsilon_greedy", "epsilon": 0.05, "pool": 40, "seed": 0}
                        if args.policy == "epsilon_greedy" else  # learning: as configs/pipelines/bandit-linucb.yaml
                        {"policy": args.policy, "pool": 40, "seed": 0, "learning": {"dim": 8}}),
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
    if args.candidate_cache_mb is not None:
        config["merge"]["cache_mb"] = args.candidate_cache_mb
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
                "config": config.model_dump(mode="json"), "data": {"name": "synthetic", "log": log_spec(n_items, args)},
                "metrics": {"pipeline": {}}}
    out = save_artifact(parts, manifest, artifact_dir(workdir, n_items, args), overwrite=True)
    facts = {"items": data.n_items, "users": data.n_users, "events": len(data), "data_s": round(t1 - t0, 1),
             "fit_s": round(t2 - t1, 1), "save_s": round(time.perf_counter() - t2, 1)}
    return out, facts


def build_in_child(n_items: int, args: argparse.Namespace, workdir: Path, facts_file: Path) -> dict[str, Any]:
    """Build the artifact (and the popular items) in a process of its own — this script with ``--build-only`` for
    this catalog — and return its build facts.

    The process that then drives the load keeps none of the build's heap, torch thread pools or caches: on the
    2-core box, runs whose generator had trained the pipeline itself measured p50 5.7-6.4 ms and p99 18.9-23.0 ms
    against 3.8-4.1 and 14.3-14.4 ms for the same artifact reused, alternated (docs/benchmarks.md, "Issue 20,
    fifteenth session")."""
    command = [sys.executable, str(Path(__file__).resolve()), *args.argv, "--items", str(n_items),
               "--workdir", str(workdir), "--build-only"]
    done = subprocess.run(command, stdout=sys.stderr, check=False)
    if done.returncode != 0 or not facts_file.is_file():
        raise SystemExit(f"error: building the {n_items:,}-item artifact failed (exit code {done.returncode}); "
                         "its output is above")
    facts: dict[str, Any] = json.loads(facts_file.read_text())
    return facts


def log_spec(n_items: int, args: argparse.Namespace) -> dict[str, int]:
    """What the synthetic training log is drawn from (kept in the manifest, checked on ``--reuse``)."""
    return {"items": n_items, "users": args.users, "per_user": args.per_user, "seed": args.seed,
            "cover_group": args.cover_group}


def reuse_mismatch(artifact: Path, n_items: int, args: argparse.Namespace) -> str | None:
    """Why the artifact already in the workdir is not the one these options would build, or None when it is (its
    pipeline config, read with today's defaults, equals this run's; its synthetic log too, where the manifest records
    it)."""
    manifest = json.loads((artifact / "manifest.json").read_text())
    want = validate_pipeline_config(pipeline_config(args)).model_dump(mode="json")
    try:  # read through today's config model, so a setting added since (with its default) is no difference
        have = validate_pipeline_config(manifest.get("config", {})).model_dump(mode="json")
    except ConfigError as exc:
        return f"its pipeline config is not valid today ({exc})"
    if have != want:
        diff = sorted(k for k in {*want, *have} if want.get(k) != have.get(k))
        return f"its pipeline config differs in {', '.join(diff)} (--ranker, --retrieval, --index, --merge-k …)"
    log = manifest.get("data", {}).get("log")
    if log is not None and log != log_spec(n_items, args):
        return f"it was trained on another synthetic log ({log} against {log_spec(n_items, args)})"
    return None


def artifact_dir(workdir: Path, n_items: int, args: argparse.Namespace) -> Path:
    """Where the artifact of ``n_items`` items is built (a learning policy's has its own, so ``--reuse`` never serves
    one policy's artifact for another)."""
    return workdir / (f"artifact-{n_items}" + ("" if args.policy == "epsilon_greedy" else f"-{args.policy}"))


def policy_states(url: str, workers: int, limit_s: float = POLICY_SETTLE_S) -> dict[str, Any]:
    """Every worker's ``GET /v1/policy`` (new connections until each has answered), read again until all report the
    same log position and statistics digest or ``limit_s`` passed: the states by worker, whether they are
    identical, and the seconds waited."""
    started = time.perf_counter()
    while True:
        seen: dict[str, dict[str, Any]] = {}
        for _ in range(50 * workers):
            response = httpx.get(url + "/v1/policy", timeout=10, headers={"Connection": "close"})
            response.raise_for_status()
            seen[response.headers.get("x-rankstack-worker", "single")] = response.json()
            if len(seen) == workers:
                break
        same = len(seen) == workers and len({(s["cursor"], s["digest"]) for s in seen.values()}) == 1
        waited = time.perf_counter() - started
        if same or waited > limit_s:
            return {"workers": seen, "identical": same, "settled_s": round(waited, 2)}
        time.sleep(0.5)


def free_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def state_file(workdir: Path, port: int) -> Path:
    """The SQLite state of the server on ``port`` (with its ``-wal`` and ``-shm`` companions beside it)."""
    return workdir / f"state-{port}.db"


def start_server(artifact: Path, workdir: Path, port: int, workers: int = 1,
                 batch_wait_ms: float = DEFAULT_BATCH_WAIT_MS,
                 batcher: str = "loop", deadline_ms: float = 100.0,
                 inline_batch_ms: float | None = None,
                 request_start_header: str | None = None, max_batch: int | None = None,
                 nice: int = 0, pin_workers: bool = False, balance_workers: bool = True
                 ) -> subprocess.Popen[bytes]:
    """``python -m rankstack.serving`` with one torch thread per worker process, its scheduling priority lowered
    by ``nice`` (its workers inherit it)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    state = state_file(workdir, port)
    log = (workdir / f"server-{port}.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "rankstack.serving", str(artifact), "--port", str(port),
                             "--state", f"sqlite:{state}", *(["--workers", str(workers)] if workers > 1 else []),
                             "--batch-wait-ms", str(batch_wait_ms),
                             "--batcher", batcher, "--deadline-ms", str(deadline_ms),
                             *(["--inline-batch-ms", str(inline_batch_ms)] if inline_batch_ms is not None else []),
                             *(["--max-batch", str(max_batch)] if max_batch is not None else []),
                             *(["--pin-workers"] if pin_workers else []),
                             *([] if balance_workers else ["--no-balance-workers"]),
                             *(["--request-start-header", request_start_header] if request_start_header else [])],
                            env=env, stdout=log, stderr=subprocess.STDOUT,
                            preexec_fn=(lambda: os.nice(nice)) if nice else None)
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


def metrics_text(url: str) -> str:
    """The server's /metrics (waiting up to a minute: after an overloaded run it answers behind the backlog);
    empty when it does not answer, so that one slow scrape does not lose the run's figures."""
    try:
        return httpx.get(url + "/metrics", timeout=60).text
    except httpx.HTTPError as exc:
        print(f"  /metrics did not answer ({type(exc).__name__}): server figures left out", flush=True)
        return ""


def server_counters(text: str) -> dict[str, tuple[float, float]]:
    """(sum, count) of each stage histogram and of the batch-size histogram, from the server's /metrics ``text``."""
    out = {}
    for name, label in (("rankstack_stage_duration_seconds", r'\{stage="([^"]+)"\}'),
                        ("rankstack_recommend_batch_size", r"()")):
        sums = dict(re.findall(name + "_sum" + label + r" (\S+)", text))
        counts = dict(re.findall(name + "_count" + label + r" (\S+)", text))
        out.update({(key or "batch_size"): (float(sums[key]), float(counts[key])) for key in sums})
    return out


def degradations(text: str) -> dict[str, float]:
    """Stage degradations and fallbacks the server's /metrics ``text`` counts (``stage/status`` and
    ``fallback:name``)."""
    found = {f"{stage}/{status}": float(n) for stage, status, n in re.findall(
        r'rankstack_stage_degradations_total\{stage="([^"]+)",status="([^"]+)"\} (\S+)', text)}
    found.update({f"fallback:{name}": float(n) for name, n in re.findall(
        r'rankstack_fallbacks_total\{fallback="([^"]+)"\} (\S+)', text)})
    return found


def cache_lookups(text: str, cache: str = "state_cache") -> dict[str, float]:
    """The lookups of ``cache`` (``state_cache``: the ranker's user states; ``candidate_cache``: known users' merged
    candidates) the server's /metrics ``text`` counts, by result (``hit``, ``miss``; empty when it counts none)."""
    return {result: float(n) for result, n in re.findall(
        rf'rankstack_{cache}_lookups_total\{{result="([^"]+)"\}} (\S+)', text)}


def cache_figures(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    """Lookups between two readings and the share that missed (the server counts them as each batch ends)."""
    if not before or not after:
        return {}
    hits, misses = (after.get(k, 0.0) - before.get(k, 0.0) for k in ("hit", "miss"))
    lookups = hits + misses
    return {"lookups": int(lookups), "miss_share": round(misses / lookups, 3) if lookups else None}


def degradations_between(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Degradations and fallbacks counted between two readings (none when a reading is missing)."""
    if not before or not after:
        return {}
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v - before.get(k, 0.0)}


def counter_means(before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]]) -> dict[str, float]:
    """Mean per observation between two readings: stage times in ms per batch, batch size in requests (none when
    a reading is missing)."""
    means: dict[str, float] = {}
    if not before or not after:
        return means
    for key, (total, count) in after.items():
        total0, count0 = before.get(key, (0.0, 0.0))
        if count > count0:
            scale = 1.0 if key == "batch_size" else 1000.0
            means[key] = round(scale * (total - total0) / (count - count0), 3)
    return means


def popular_items(n_items: int, args: argparse.Namespace, workdir: Path,
                  top: int = 2_000) -> tuple[list[str], np.ndarray]:
    """The ``top`` most frequent items of the training log and their shares (kept in the workdir): where a fresh
    click lands when its user has no slate yet."""
    path = workdir / f"popular-{n_items}.json"
    if not path.is_file():
        events, _ = synthetic_log(n_items, args.users, args.per_user, args.seed, args.cover_group)
        counts = events.group_by("item_id").len().sort(["len", "item_id"], descending=[True, False]).head(top)
        path.write_text(json.dumps({"items": counts["item_id"].to_list(), "counts": counts["len"].to_list()}))
    data = json.loads(path.read_text())
    counts_np = np.asarray(data["counts"], dtype=float)
    return list(data["items"]), counts_np / counts_np.sum()


async def _session(port: int, mix: Mix, offsets: np.ndarray, args: argparse.Namespace
                   ) -> tuple[Traffic, dict[str, Any]]:
    """One open-loop run of ``mix`` on ``offsets``: the traffic (its rows) and the generator's summary."""
    pool = Pool("127.0.0.1", port, max_connections=args.max_connections, timeout_s=args.timeout)
    try:
        await pool.prepare(args.connections)
        traffic = Traffic(mix, pool, offsets)
        # a recommend after a fresh event gets its own timeout from the event's answer: up to two timeouts in all
        report = await drive(offsets, traffic.job, drain_s=args.timeout * (2 if mix.fresh else 1) + 1.0)
    finally:
        pool.close()
    return traffic, {**report.summary(), "connections_opened": pool.opened}


def open_run(port: int, url: str, rate: float, fresh: float, args: argparse.Namespace,
             popular: tuple[list[str], np.ndarray], run_no: int) -> dict[str, Any]:
    """Warm up at ``rate``, then one measured open-loop run (with its overload phases when asked)."""
    def mix(tag: str, seed: int) -> Mix:
        return Mix(users=args.users, k=args.k, fresh=fresh, kind=args.fresh_kind, unknown=args.unknown_users,
                   popular_items=popular[0], popular_p=popular[1], endpoint=args.endpoint, seed=seed, tag=tag,
                   stamp=stamp_header(args))

    stamp = f"{os.getpid()}-{run_no}"
    settled_s = settle(url)
    if args.warmup:
        run_loop(_session(port, mix(f"warm-{stamp}", args.seed + 7919 * run_no + 1),
                          arrival_offsets([(rate, args.warmup)], poisson=args.arrivals == "poisson"), args))
    phases = [(rate, float(args.duration))]
    if args.overload_factor:
        phases += [(rate * args.overload_factor, float(args.overload_duration)), (rate, float(args.duration))]
    offsets = arrival_offsets(phases, poisson=args.arrivals == "poisson", seed=args.seed + run_no)
    before = metrics_text(url)
    traffic, generator = run_loop(_session(port, mix(f"run-{stamp}", args.seed + 7919 * run_no), offsets, args))
    after = metrics_text(url)
    table = traffic.table()
    kind = HEALTH if args.endpoint == "healthz" else RECOMMEND
    row: dict[str, Any] = {"offered": rate, "fresh_events": fresh, "endpoint": args.endpoint,
                           "stamped": stamp_header(args) is not None, "settled_s": settled_s,
                           **{k: v for k, v in summarise(table, 0.0, float(args.duration), kind=kind).items()
                              if k != "offered"},
                           "degraded_reasons": dict(traffic.reasons), "cold": traffic.cold,
                           "generator": generator,
                           "server_means": counter_means(server_counters(before), server_counters(after)),
                           **{cache: cache_figures(cache_lookups(before, cache), cache_lookups(after, cache))
                              for cache in ("state_cache", "candidate_cache")},
                           "degradations": degradations_between(degradations(before), degradations(after))}
    if args.overload_factor:
        row["overload"] = {"factor": args.overload_factor, **overload_figures(
            table, before_s=float(args.duration), overload_s=float(args.overload_duration),
            after_s=float(args.duration), threshold_ms=args.deadline_ms)}
    return row


def seconds_over(timeline: list[list[Any]], p99_ms: float) -> str:
    """How many 1-s windows of a run's ``timeline`` missed ``p99_ms`` (or shed or failed), and the worst one."""
    bad = [w for w in timeline if w[2] or w[3] or (w[4] is not None and w[4] > p99_ms)]
    if not bad:
        return f"every second within p99 {p99_ms:g} ms"
    worst = max(bad, key=lambda w: w[5] or 0.0)
    return (f"{len(bad)} of {len(timeline)} seconds over p99 {p99_ms:g} ms or shedding (worst at {worst[0]:g} s: "
            f"p99 {worst[4]} ms, {worst[2]} shed)")


def settle(url: str, limit_s: float = 90.0, quick_ms: float = 50.0) -> float:
    """Wait (up to ``limit_s``) until an event post and a recommend both answer within ``quick_ms`` twice in a row,
    so that a backlog left by an overloaded run (event writes queued in the server's threads) does not spill into
    the next run; returns the seconds waited."""
    started = time.perf_counter()
    quick = 0
    with httpx.Client(base_url=url, timeout=30) as http:
        while quick < 2 and time.perf_counter() - started < limit_s:
            t0 = time.perf_counter()
            try:
                http.post("/v1/events", json={"events": [{"event_id": f"settle-{time.time_ns()}", "user_id": "u0",
                                                          "item_id": "i0", "event": "impression"}]})
                http.post("/v1/recommend", json={"user_id": "u0", "k": 20})
            except httpx.HTTPError:
                quick = 0
                time.sleep(0.5)
                continue
            quick = quick + 1 if (time.perf_counter() - t0) * 1e3 < 2 * quick_ms else 0
            if quick < 2:
                time.sleep(0.2)
    return round(time.perf_counter() - started, 1)


def wrk_run(url: str, rate: float, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Warm up, calibrate the pause, then one wrk run at ``rate``."""
    period_ms = 1000.0 * args.connections / rate
    warm = run_wrk(url, args, args.warmup, int(period_ms * 0.9), workdir)
    wait_ms = max(0, round(period_ms - warm["mean_ms"]))
    before = metrics_text(url)
    result = run_wrk(url, args, args.duration, wait_ms, workdir)
    after = metrics_text(url)
    return {"target_rps": rate, **result, "warmup": warm,
            "server_means": counter_means(server_counters(before), server_counters(after)),
            "degradations": degradations_between(degradations(before), degradations(after))}


def measure(n_items: int, args: argparse.Namespace, workdir: Path,
            save: Callable[[list[dict[str, Any]]], None] = lambda rows: None) -> dict[str, Any]:
    """Build, serve, seed, then one warmed-up run per offered load (and fresh-event share); ``save`` gets the runs
    so far after each one (a sweep cut short keeps what it measured)."""
    print(f"catalog {n_items:,} items: training …", flush=True)
    artifact = artifact_dir(workdir, n_items, args)
    facts_file = workdir / f"build-{artifact.name.removeprefix('artifact-')}.json"
    if args.reuse and (artifact / "manifest.json").is_file():
        mismatch = reuse_mismatch(artifact, n_items, args)
        if mismatch is not None:
            raise SystemExit(f"error: --reuse: {artifact} was built with other options: {mismatch}; drop --reuse "
                             "to rebuild it there, or give another --workdir")
        facts = json.loads(facts_file.read_text())
    elif args.build_only:  # the build process itself (``build_in_child``), or a build asked for on its own
        artifact, facts = build_artifact(n_items, args, workdir)
        facts_file.write_text(json.dumps(facts))
    else:
        facts = build_in_child(n_items, args, workdir, facts_file)
    print(f"  built: {facts}", flush=True)
    popular = popular_items(n_items, args, workdir)
    if args.build_only:
        return {"catalog_items": n_items, "build": facts}
    port = free_port()
    t0 = time.perf_counter()
    proc = start_server(artifact, workdir, port, args.workers, args.batch_wait_ms, args.batcher, args.deadline_ms,
                        args.inline_batch_ms, stamp_header(args), args.max_batch, args.server_nice, args.pin_workers,
                        args.balance_workers)
    startup_s = time.perf_counter() - t0
    url = f"http://127.0.0.1:{port}"
    rows: list[dict[str, Any]] = []
    try:
        seed_state(url, args.users, n_items, args.seed_events, args.seed)
        shares = args.fresh_events if args.generator == "open" else [0.0]
        for fresh in shares:
            for rate in args.rates:
                if args.generator == "open":
                    result = open_run(port, url, rate, fresh, args, popular, len(rows))
                    print(f"  {rate:g} req/s offered, fresh {fresh:g}: p50 {result['p50_ms']} ms, p99 "
                          f"{result['p99_ms']} ms, achieved {result['achieved']} req/s, errors {result['errors']}, "
                          f"degraded {result['degraded']}, shed {result['shed']}, generator CPU "
                          f"{result['generator']['cpu_share']:.0%}; {seconds_over(result['timeline'], 20.0)}",
                          flush=True)
                    for cache in ("state_cache", "candidate_cache"):
                        if result[cache].get("miss_share") is not None:
                            print(f"    {cache.replace('_', ' ')}: {result[cache]['lookups']} lookups, "
                                  f"{result[cache]['miss_share']:.1%} missed", flush=True)
                    if "overload" in result:
                        o = result["overload"]
                        print(f"    overload ×{o['factor']:g}: shed {o['shed_share']:.1%}, p99 answered "
                              f"{o['p99_answered_ms']} ms, errors {o['errors']}, recovery {o['recovery_s']} s",
                              flush=True)
                else:
                    result = wrk_run(url, rate, args, workdir)
                    print(f"  {rate:g} req/s offered (wrk): p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, "
                          f"{result['throughput_rps']} req/s, errors {result['error_total']}", flush=True)
                if args.policy != "epsilon_greedy":
                    result["policy_state"] = state = policy_states(url, args.workers)
                    print(f"    policy state of {len(state['workers'])} workers: identical {state['identical']} "
                          f"after {state['settled_s']} s", flush=True)
                rows.append({"catalog_items": n_items, **result, "loadavg": os.getloadavg()})
                save(rows)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if not args.keep_state:  # one state file per run piled up in a reused workdir (hundreds of MB)
            state = state_file(workdir, port)
            for suffix in ("", "-wal", "-shm"):
                state.with_name(state.name + suffix).unlink(missing_ok=True)
    return {"catalog_items": n_items, "runs": rows, "server_startup_s": round(startup_s, 1), "build": facts}


def plot(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    """p99 of the answered recommends against the offered rate, one line per fresh-event share (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for fresh in sorted({r["fresh_events"] for r in rows}):
        runs = sorted((r for r in rows if r["fresh_events"] == fresh and r["p99_ms"] is not None),
                      key=lambda r: r["offered"])
        ax.plot([r["offered"] for r in runs], [r["p99_ms"] for r in runs], marker="o",
                label=f"{fresh:.0%} after a fresh event")
    ax.axhline(20.0, color="grey", linestyle="--", linewidth=1, label="goal: p99 20 ms")
    ax.set_xlabel("offered recommends per second (open loop)")
    ax.set_ylabel("p99 latency of answered recommends (ms)")
    ax.set_yscale("log")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _floats(text: str, name: str, lo: float, hi: float, *, open_lo: bool = False) -> list[float]:
    """A comma-separated list of numbers in [lo, hi] (or (lo, hi]), for argparse."""
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{name}: expected comma-separated numbers, got {text!r}") from None
    bad = [v for v in values if not (lo < v <= hi if open_lo else lo <= v <= hi)]
    if not values or bad:
        raise argparse.ArgumentTypeError(f"{name}: each value must lie in {'(' if open_lo else '['}{lo:g}, {hi:g}], "
                                         f"got {text!r}")
    return values


def stamp_header(args: argparse.Namespace) -> str | None:
    """The request-start header the generator stamps and the server reads (open loop with ``--stamp``), or None."""
    return STAMP_HEADER if args.stamp and args.generator == "open" else None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The options (bad values: one-line error, exit 2)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", default="41000", help="comma-separated catalog sizes")
    parser.add_argument("--users", type=int, default=30_000)
    parser.add_argument("--per-user", type=int, default=30)
    parser.add_argument("--cover-group", type=int, default=5, help="items per catalog-only user")
    parser.add_argument("--merge-k", type=int, default=300)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--ranker", default="sasrec" if "sasrec" in names("source") else "none")
    parser.add_argument("--policy", default="epsilon_greedy", choices=["epsilon_greedy", *LEARNING_POLICIES],
                        help="exploration stage: epsilon_greedy (no learning) or a policy that learns online from "
                             "the service's events (pool 40, dim 8; configs/pipelines/bandit-linucb.yaml)")
    parser.add_argument("--retrieval", default="itemknn", choices=["itemknn", "sasrec"],
                        help="second source next to popular (item-kNN's fit is quadratic in the catalog)")
    parser.add_argument("--ranker-budget-s", type=float, default=120.0)
    parser.add_argument("--generator", choices=["open", "wrk"], default="open",
                        help="open: open-loop, latency from the scheduled start (default); wrk: closed-loop wrk")
    parser.add_argument("--rates", type=lambda t: _floats(t, "--rates", 0, 1e6, open_lo=True), default=[300.0],
                        help="comma-separated offered loads (recommends/s), one run each")
    parser.add_argument("--fresh-events", type=lambda t: _floats(t, "--fresh-events", 0, 1), default=[0.0],
                        help="comma-separated shares of recommends preceded by a fresh event (open loop); "
                             "one run per share and rate")
    parser.add_argument("--fresh-kind", choices=["click", "impression"], default="click",
                        help="the fresh event (a click changes the history the ranker reads; an impression does not)")
    parser.add_argument("--unknown-users", type=float, default=0.0,
                        help="share of recommends for never-seen users (open loop; their fallback is not 'degraded')")
    parser.add_argument("--arrivals", choices=["uniform", "poisson"], default="uniform",
                        help="open loop: evenly spaced starts (constant rate) or Poisson arrivals at that rate")
    parser.add_argument("--endpoint", choices=["recommend", "healthz"], default="recommend",
                        help="open loop: what to request (healthz: the generator's and HTTP stack's floor)")
    parser.add_argument("--overload-factor", type=float, default=0.0,
                        help="open loop: after --duration at the rate, offer this many times the rate …")
    parser.add_argument("--overload-duration", type=float, default=30.0, help="… for this many seconds, then the "
                        "rate again for --duration seconds")
    parser.add_argument("--deadline-ms", type=float, default=100.0,
                        help="the server's request deadline (its --deadline-ms); recovery means p99 back under it")
    parser.add_argument("--stamp", action=argparse.BooleanOptionalAction, default=False,
                        help="open loop: stamp each request with X-Request-Start (when it is sent) and start the "
                             "server with --request-start-header X-Request-Start, as behind a front proxy, so its "
                             "deadlines count from then; default --no-stamp: from when the server reads it (the "
                             "stamped runs of docs/benchmarks.md, seventh session, shed more at the same rates)")
    parser.add_argument("--timeout", type=float, default=5.0, help="open loop: seconds from a request's scheduled "
                        "start before it counts as a timeout")
    parser.add_argument("--connections", type=int, default=16,
                        help="wrk: connections; open loop: connections opened before the run")
    parser.add_argument("--max-connections", type=int, default=1024, help="open loop: most connections open at once")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes (rankstack serve --workers)")
    parser.add_argument("--tag", default="", help="suffix of the results file (keeps earlier runs)")
    parser.add_argument("--batch-wait-ms", type=float, default=DEFAULT_BATCH_WAIT_MS,
                        help="the server's --batch-wait-ms (its longest micro-batch fill wait, scaled by load)")
    parser.add_argument("--batcher", choices=["loop", "thread"], default="loop", help="where the server runs batches")
    parser.add_argument("--max-batch", type=int, default=None, help="the server's --max-batch (default: the "
                        "server's own)")
    parser.add_argument("--server-nice", type=int, default=0, help="start the server this much nicer than the "
                        "generator (0-19; default 0, the same priority): on a shared box a waking generator then "
                        "gets a core at once, as a client on another machine would, instead of waiting out a "
                        "worker's time slice with the wait charged to the server's latency")
    parser.add_argument("--pin-workers", action=argparse.BooleanOptionalAction, default=None,
                        help="the server's --pin-workers (each worker process on one core; default: on with "
                        "--workers 2 or more, the deployment docs/serving.md recommends for a box given to the "
                        "service)")
    parser.add_argument("--balance-workers", action=argparse.BooleanOptionalAction, default=True,
                        help="the server's --balance-workers (a worker busier than the others closes some kept-alive "
                        "connections; default on, as in the server)")
    parser.add_argument("--inline-batch-ms", type=float, default=None, help="the server's --inline-batch-ms (loop "
                        "batcher: longer batches run off the loop's thread; a huge value keeps every batch on it, as "
                        "before; default: the server's)")
    parser.add_argument("--index", choices=["exact", "hnsw", "ivf-flat"], default=None,
                        help="with --retrieval sasrec: serve its retrieval from this vector index")
    parser.add_argument("--index-params", type=json.loads, default={}, help='JSON, e.g. \'{"nlist": 4096}\'')
    parser.add_argument("--duration", type=int, default=30, help="seconds measured per run")
    parser.add_argument("--warmup", type=int, default=5, help="seconds of load before each run, not measured")
    parser.add_argument("--seed-events", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--reuse", action="store_true", help="reuse artifacts already built in --workdir (refused, "
                        "before anything is served, when one was built with another pipeline or synthetic log)")
    parser.add_argument("--keep-state", action="store_true",
                        help="keep the run's SQLite state (workdir/state-<port>.db) instead of deleting it afterwards")
    parser.add_argument("--state-cache", type=int, default=None,
                        help="ranker.state_cache of a new artifact (0: the transformer runs on every request)")
    parser.add_argument("--candidate-cache-mb", type=float, default=None,
                        help="merge.cache_mb of a new artifact (0: retrieval runs for every request)")
    parser.add_argument("--build-only", action="store_true", help="build the artifacts in --workdir, serve nothing")
    parser.add_argument("--json", action="store_true", help="print one JSON object ({'runs': [...]}) on stdout, "
                        "progress on stderr")
    parser.add_argument("--plot", action="store_true", help="write a PNG of p99 vs offered rate next to the JSON")
    args = parser.parse_args(argv)
    if args.generator == "wrk" and (any(args.fresh_events) or args.overload_factor or args.endpoint != "recommend"):
        parser.error("--fresh-events, --overload-factor and --endpoint need --generator open")
    if args.generator == "wrk" and shutil.which("wrk") is None:
        parser.error("wrk is not on PATH: apt-get install wrk (or use --generator open)")
    checks = [("--duration", args.duration > 0), ("--warmup", args.warmup >= 0), ("--timeout", args.timeout > 0),
              ("--overload-factor", args.overload_factor == 0 or args.overload_factor >= 1),
              ("--overload-duration", args.overload_duration > 0), ("--deadline-ms", args.deadline_ms > 0),
              ("--unknown-users", 0 <= args.unknown_users <= 1), ("--connections", args.connections >= 1),
              ("--max-connections", args.max_connections >= 1),
              ("--max-batch", args.max_batch is None or args.max_batch >= 1),
              ("--server-nice", 0 <= args.server_nice <= 19),
              ("--inline-batch-ms", args.inline_batch_ms is None or args.inline_batch_ms >= 0)]
    for name, ok in checks:
        if not ok:
            parser.error(f"{name}: bad value (durations and timeouts > 0, --overload-factor 0 or >= 1, shares in "
                         "[0, 1], connection counts >= 1)")
    if args.pin_workers is None:
        args.pin_workers = args.workers > 1
    args.argv = list(sys.argv[1:] if argv is None else argv)  # what ``build_in_child`` passes on to the build
    return args


def exit_on_sigterm() -> None:
    """Turn SIGTERM into ``SystemExit`` so that ``finally`` blocks run: a terminated run stops the server it started
    (its workers were left serving, holding the CPU, when ``kill`` ended the script)."""
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))


def main(argv: list[str] | None = None) -> None:
    """Parse options, measure each catalog size, write one JSON per size (and the plot); ``--json``: print one."""
    args = parse_args(argv)
    exit_on_sigterm()
    real_stdout = None
    if args.json:  # stdout carries the JSON object only: everything else (ours, libraries', C code's) to stderr
        sys.stdout.flush()
        real_stdout = os.fdopen(os.dup(1), "w")
        os.dup2(2, 1)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="rankstack-serve-load-"))
    workdir.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    code = _git_head()  # before this run writes its own results file into the tree
    catalogs = []
    for n_items in (int(x) for x in args.items.split(",")):
        suffix = ("" if args.retrieval == "itemknn" else f"-{args.retrieval}") + (
            "" if args.policy == "epsilon_greedy" else f"-{args.policy}") + (
            f"-w{args.workers}" if args.workers > 1 else "") + ("-open" if args.generator == "open" else "") + (
            f"-{args.tag}" if args.tag else "")
        out = RESULTS / f"serve_load-{n_items}{suffix}.json"

        def save(rows: list[dict[str, Any]], out: Path = out, n_items: int = n_items) -> None:
            out.write_text(json.dumps({"catalog_items": n_items, "partial": True, "runs": rows,
                                       "command": "python benchmarks/serve_load.py " + " ".join(
                                           sys.argv[1:] if argv is None else argv)}, indent=2) + "\n")

        row = measure(n_items, args, workdir, save)
        if args.build_only:
            continue
        row.update({"code": code, "generator": args.generator, "ranker": args.ranker, "policy": args.policy,
                    "retrieval": args.retrieval, "merge_k": args.merge_k,
                    "k": args.k, "workers": args.workers, "batch_wait_ms": args.batch_wait_ms, "batcher": args.batcher,
                    "inline_batch_ms": args.inline_batch_ms,
                    "max_batch": args.max_batch, "server_nice": args.server_nice,
                    "pin_workers": args.pin_workers, "balance_workers": args.balance_workers,
                    "deadline_ms": args.deadline_ms, "index": args.index, "index_params": args.index_params,
                    "connections": args.connections, "users": args.users, "duration_s": args.duration,
                    "warmup_s": args.warmup, "arrivals": args.arrivals, "fresh_kind": args.fresh_kind,
                    "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                                "loadavg_after": os.getloadavg()},
                    "date": datetime.now(UTC).isoformat(timespec="seconds"),
                    "command": "python benchmarks/serve_load.py " + " ".join(sys.argv[1:] if argv is None else argv)})
        out.write_text(json.dumps(row, indent=2) + "\n")
        if args.plot and args.generator == "open":
            plot(row["runs"], out.with_suffix(".png"), f"{n_items:,} items, {args.workers} workers, "
                 f"{row['date']}, loadavg {row['machine']['loadavg_after'][0]:.1f}")
        catalogs.append(row)
    wall = time.perf_counter() - started
    print(f"total wall time {wall:.0f} s; results in {RESULTS}", flush=True)
    if real_stdout is not None:
        runs = [run for row in catalogs for run in row["runs"]]
        meta = {k: v for k, v in (catalogs[0] if catalogs else {}).items() if k not in ("runs", "catalog_items")}
        real_stdout.write(json.dumps({"runs": runs, **meta, "catalogs": [
            {k: row[k] for k in ("catalog_items", "build", "server_startup_s")} for row in catalogs],
            "wall_s": round(wall, 1)}) + "\n")
        real_stdout.flush()


def _git_head() -> str:
    """The commit of the checkout this script is in (not the current directory's), with ``-dirty`` when its tree
    has uncommitted changes ("unknown" outside git)."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=here)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, check=True, cwd=here)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


if __name__ == "__main__":
    main()
