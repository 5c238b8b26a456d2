"""Throughput around a worker replacement: ``--workers 2``, one worker killed with SIGKILL under load.

Builds the ``serve_load`` pipeline (synthetic log; ``--items``, ``--ranker``), starts ``python -m rankstack.serving
--workers 2`` with SQLite state, then runs closed-loop clients in threads of this process: ``--keepalive``
clients that keep one connection each and ``--fresh`` clients that open a new connection per request. After
``--before`` seconds it kills the worker with the lower pid and keeps going for ``--after`` seconds. Prints, per
second relative to the kill, the answers by client kind and by worker (``victim``, ``survivor``, ``replacement``)
and the transport errors, and writes ``benchmarks/results/worker_replacement-<items>.json``.

The clients share this process's GIL and the machine's cores with the server: on a 2-core box the absolute
rates are the client's as much as the server's; compare seconds before and after the kill.

Usage: python benchmarks/worker_replacement.py [--items 2000] [--users 3000] [--ranker none] [--keepalive 2]
       [--fresh 1] [--before 5] [--after 15]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from serve_load import RESULTS, _git_head, build_artifact, free_port, start_server


def client(url: str, keepalive: bool, stop: threading.Event, log: list[tuple[float, str, str]]) -> None:
    """Recommend in a closed loop until ``stop``; log (time, kind, worker pid or "error") per answer."""
    kind = "keepalive" if keepalive else "fresh"
    limits = httpx.Limits(max_keepalive_connections=None if keepalive else 0)
    with httpx.Client(base_url=url, timeout=10, limits=limits) as http:
        n = 0
        while not stop.is_set():
            n += 1
            try:
                response = http.post("/v1/recommend", json={"user_id": f"u{n % 1000}", "k": 20})
                who = response.headers.get("x-rankstack-worker", "?") if response.status_code == 200 else (
                    f"status {response.status_code}")
            except httpx.HTTPError:
                who = "error"
            log.append((time.monotonic(), kind, who))


def table(log: list[tuple[float, str, str]], killed_at: float, victim: int, survivor: int,
          seconds: range) -> list[dict[str, Any]]:
    """Answers per second around the kill, by client kind and worker role."""
    def role(who: str) -> str:
        if not who.isdigit():
            return who
        return {victim: "victim", survivor: "survivor"}.get(int(who), "replacement")

    rows = []
    for sec in seconds:
        counts = Counter(f"{kind}:{role(who)}" for t, kind, who in log if sec <= t - killed_at < sec + 1)
        rows.append({"second": sec, "total": sum(counts.values()), **dict(sorted(counts.items()))})
    return rows


def summarise(rows: list[dict[str, Any]], back: int | None) -> dict[str, Any]:
    """Mean answers per second before the kill, while the replacement loads and after it answers; the share of
    kept-alive requests it takes from the second after its first answer."""
    def mean(selected: list[dict[str, Any]]) -> float | None:
        return round(sum(r["total"] for r in selected) / len(selected), 1) if selected else None

    after = [r for r in rows if back is not None and r["second"] > back]
    kept = sum(v for r in after for k, v in r.items() if k.startswith("keepalive:"))
    moved = sum(r.get("keepalive:replacement", 0) for r in after)
    return {"per_s_before": mean([r for r in rows if r["second"] < 0]),
            "per_s_loading": mean([r for r in rows if 0 < r["second"] < (back if back is not None else 10 ** 9)]),
            "per_s_after": mean(after),
            "keepalive_share_on_replacement": round(moved / kept, 3) if kept else None}


def main() -> None:
    """Build, serve with two workers, load, kill one, report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=2_000)
    parser.add_argument("--users", type=int, default=3_000)
    parser.add_argument("--per-user", type=int, default=30)
    parser.add_argument("--cover-group", type=int, default=5)
    parser.add_argument("--merge-k", type=int, default=300)
    parser.add_argument("--ranker", default="none", help="none or sasrec (as in serve_load.py)")
    parser.add_argument("--retrieval", default="itemknn", choices=["itemknn", "sasrec"])
    parser.add_argument("--ranker-budget-s", type=float, default=120.0)
    parser.add_argument("--keepalive", type=int, default=2, help="clients keeping one connection each")
    parser.add_argument("--fresh", type=int, default=1, help="clients opening a connection per request")
    parser.add_argument("--before", type=float, default=5.0)
    parser.add_argument("--after", type=float, default=15.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.index, args.index_params, args.state_cache = None, {}, None  # what serve_load's pipeline_config reads
    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="rankstack-worker-replacement-"))
    artifact, facts = build_artifact(args.items, args, workdir)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(artifact, workdir, port, workers=2)
    stop, log = threading.Event(), []  # type: ignore[var-annotated]
    threads = [threading.Thread(target=client, args=(url, keep, stop, log))
               for keep in [True] * args.keepalive + [False] * args.fresh]
    try:
        pids: set[int] = set()
        while len(pids) < 2:
            pids.add(int(httpx.get(url + "/healthz", timeout=5).headers["x-rankstack-worker"]))
        victim, survivor = min(pids), max(pids)
        for thread in threads:
            thread.start()
        time.sleep(args.before)
        killed_at = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        time.sleep(args.after)
    finally:
        stop.set()
        for thread in threads:
            thread.join(15)
        server.terminate()
        server.wait(30)
    rows = table(log, killed_at, victim, survivor, range(-int(args.before) + 1, int(args.after)))
    for row in rows:
        print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    back = next((r["second"] for r in rows if any(k.endswith(":replacement") for k in r)), None)
    summary = summarise(rows, back)
    print(json.dumps(summary), flush=True)
    result = {"items": args.items, "ranker": args.ranker, "build": facts, "keepalive": args.keepalive,
              "fresh": args.fresh, "replacement_first_answer_s": back, **summary, "seconds": rows, "code": _git_head(),
              "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                          "loadavg_after": os.getloadavg()},
              "date": datetime.now(UTC).isoformat(timespec="seconds"),
              "command": "python benchmarks/worker_replacement.py " + " ".join(sys.argv[1:]),
              "wall_s": round(time.perf_counter() - started, 1)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"worker_replacement-{args.items}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"replacement answered first in second {back}; wall time {result['wall_s']} s", flush=True)


if __name__ == "__main__":
    main()
