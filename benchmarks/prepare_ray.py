"""``rankstack data prepare`` on one machine vs on Ray with 1 and 2 workers: wall time, peak memory (the driver's and
each Ray worker's VmHWM) and the output hash; writes benchmarks/results/prepare_ray-<events>.json.

A synthetic CSV log (user, item, epoch-second time, event: click / view / impression) is generated once, seeded.
Each run is a fresh Python process (and, for Ray, a fresh local Ray instance with --workers CPUs).

Usage: python benchmarks/prepare_ray.py [--events 10000000] [--shards 8] [--work DIR] [--runs single,ray1,ray2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def make_log(path: Path, events: int, seed: int = 0) -> None:
    """A seeded synthetic log: 2% as many users as events, 0.5% as many items, Zipf-ish item popularity."""
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(seed)
    users = rng.integers(0, max(events // 50, 1), events)
    items = np.minimum(rng.zipf(1.3, events), max(events // 200, 1)) - 1
    frame = pl.DataFrame({
        "user_id": users, "item_id": items,
        "timestamp": 1_600_000_000 + rng.integers(0, 365 * 86_400, events),
        "event": rng.choice(np.array(["click", "view", "impression"]), events, p=[0.3, 0.2, 0.5]),
    })
    frame.write_csv(path)


def peak_kib(pid: int | str = "self") -> int:
    """A process's peak resident memory (VmHWM) in KiB, 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def ray_worker_peaks() -> list[int]:
    """VmHWM (KiB) of every Ray worker process (``ray::`` command line) descended from this process, largest first
    (Ray keeps a few idle workers beside the ones that ran tasks)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    peaks, todo = [], [os.getpid()]
    while todo:
        for child in children.get(todo.pop(), []):
            todo.append(child)
            try:
                cmd = Path(f"/proc/{child}/cmdline").read_bytes()
                if cmd.startswith(b"ray::") and b"Agent" not in cmd.split(b"\0")[0]:  # workers, not Ray's agents
                    peaks.append(peak_kib(child))
            except OSError:
                continue
    return sorted(peaks, reverse=True)


def run_one(log: Path, out: Path, mode: str, shards: int) -> dict:
    """Prepare once in this process; wall time (with Ray: starting it included, ``ray_start_s`` of it), peaks,
    manifest hash."""
    from rankstack.data.schema import EventSchema

    schema = EventSchema(duplicates="drop")
    t0 = time.perf_counter()
    if mode == "single":
        from rankstack.data.prepare import prepare_log

        manifest = prepare_log(log, out, shards=shards, schema=schema)
        workers: list[int] = []
    else:
        import ray

        from rankstack.distributed.backend import Backend
        from rankstack.distributed.preprocess import prepare_log_on_ray

        n = int(mode.removeprefix("ray"))
        ray.init(address="local", num_cpus=n, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
        started = time.perf_counter()
        manifest = prepare_log_on_ray(log, out, Backend("ray", n), shards=shards, schema=schema)
        workers = ray_worker_peaks()
        ray.shutdown()
        return {"mode": mode, "wall_s": round(time.perf_counter() - t0, 2), "ray_start_s": round(started - t0, 2),
                "driver_peak_mib": round(peak_kib() / 1024), "worker_peaks_mib": [round(w / 1024) for w in workers],
                "events": manifest["events"], "hash": manifest["hash"]}
    return {"mode": mode, "wall_s": round(time.perf_counter() - t0, 2), "driver_peak_mib": round(peak_kib() / 1024),
            "worker_peaks_mib": workers, "events": manifest["events"], "hash": manifest["hash"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--work", type=Path, default=Path("/tmp/rankstack-prepare-bench"))
    parser.add_argument("--runs", default="single,ray1,ray2")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: run one mode, print JSON
    args = parser.parse_args()
    log = args.work / f"events-{args.events}.csv"
    if args.one:
        print(json.dumps(run_one(log, args.work / f"out-{args.one}", args.one, args.shards)))
        return
    args.work.mkdir(parents=True, exist_ok=True)
    if not log.exists():
        t0 = time.perf_counter()
        make_log(log, args.events)
        print(f"generated {log} ({log.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t0:.1f} s", flush=True)
    rows = []
    for mode in args.runs.split(","):
        load = Path("/proc/loadavg").read_text().split()[:3]
        done = subprocess.run([sys.executable, __file__, "--events", str(args.events), "--shards", str(args.shards),
                               "--work", str(args.work), "--one", mode], capture_output=True, text=True, check=True)
        row = {**json.loads(done.stdout.strip().splitlines()[-1]), "loadavg_before": " ".join(load)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    RESULTS.mkdir(exist_ok=True)
    result = {"benchmark": "prepare_ray", "events": args.events, "shards": args.shards, "log_bytes": log.stat().st_size,
              "created_at": datetime.now(UTC).isoformat(timespec="seconds"), "cpu_count": os.cpu_count(),
              "runs": rows, "hashes_equal": len({r["hash"] for r in rows}) == 1}
    path = RESULTS / f"prepare_ray-{args.events}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
