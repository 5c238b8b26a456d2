"""Long runs of the learning policies on the simulator: several seeds, cumulative regret and CTR curves.

Each (policy, seed) runs ``run_policy`` of ``bandits/policy_comparison.py`` on the stream of that seed (the
same requests and click uniforms for every policy of a seed) and appends one JSON line to ``--out`` as soon as
it ends: the final metrics and a trace of [rounds, clicks, revenue, regret] every ``--every`` batches. A run
that would not end before ``--stop-at`` (UTC "HH:MM", estimated from the policy's own cost at the previous
seed) is skipped and recorded as skipped. ``--plot`` reads the lines back and draws mean and min–max band over
seeds of cumulative regret and of the CTR within each traced window (``--every`` batches).

Usage:
  OMP_NUM_THREADS=1 nice -n 10 python benchmarks/bandits_long.py --policies uniform,linucb --rounds 1000000 \\
      --seeds 0,1,2 --out benchmarks/results/issue18-long.jsonl --stop-at 17:30
  python benchmarks/bandits_long.py --plot benchmarks/results/issue18-long.jsonl --png docs/figures/x.png
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np


def _deadline(stop_at: str | None) -> float | None:
    if not stop_at:
        return None
    h, m = (int(v) for v in stop_at.split(":"))
    now = datetime.now(UTC)
    return now.replace(hour=h, minute=m, second=0, microsecond=0).timestamp()


def run(args: argparse.Namespace) -> None:
    """Every policy × seed, one JSON line each."""
    from rankstack.bandits.policy_comparison import build_policy, check_names, make_stream, run_policy

    names = check_names([p for p in args.policies.split(",") if p])
    seeds = [int(s) for s in args.seeds.split(",")]
    stop = _deadline(args.stop_at)
    cost: dict[str, float] = {}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        stream = make_stream(args.rounds, seed)
        for name in names:
            if stop is not None and name in cost and time.time() + 1.2 * cost[name] > stop:
                line: dict[str, Any] = {"policy": name, "seed": seed, "rounds": args.rounds, "skipped": "deadline"}
            else:
                t0 = time.perf_counter()
                policy = build_policy(name, stream, seed)
                trace: list[list[float]] = []
                metrics = run_policy(stream, policy, seed, args.batch, trace=trace)
                cost[name] = time.perf_counter() - t0
                line = {"policy": name, "seed": seed, "rounds": args.rounds, "batch": args.batch,
                        "metrics": metrics, "wall_s": round(cost[name], 1),
                        "loadavg": os.getloadavg()[0], "ended": datetime.now(UTC).isoformat(timespec="seconds"),
                        "trace": trace[args.every - 1 :: args.every]}
            with out.open("a") as fh:
                fh.write(json.dumps(line) + "\n")
            print(json.dumps({k: v for k, v in line.items() if k != "trace"}), flush=True)


def plot(path: str, png: str) -> None:
    """Mean and min–max band over seeds of cumulative regret and running CTR per policy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs: dict[str, list[np.ndarray]] = {}
    for raw in Path(path).read_text().splitlines():
        line = json.loads(raw)
        if "trace" in line:
            runs.setdefault(line["policy"], []).append(np.asarray(line["trace"]))
    fig, (ax_r, ax_c) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, traces in runs.items():
        n = min(len(t) for t in traces)
        arr = np.stack([t[:n] for t in traces])
        x = arr[0, :, 0]
        regret = arr[:, :, 3]
        rounds = np.diff(arr[:, :, 0], axis=1, prepend=0.0)
        ctr = np.diff(arr[:, :, 1], axis=1, prepend=0.0) / (5 * rounds)  # CTR within each traced window
        for ax, y in ((ax_r, regret), (ax_c, ctr)):
            line = ax.plot(x, y.mean(axis=0), label=f"{name} ({len(traces)} seeds)")[0]
            ax.fill_between(x, y.min(axis=0), y.max(axis=0), color=line.get_color(), alpha=0.2)
    ax_r.set(xlabel="rounds (slates of 5)", ylabel="cumulative expected-click regret", title="regret vs the oracle")
    ax_c.set(xlabel="rounds (slates of 5)", ylabel="realised CTR in the window", title="CTR per traced window")
    ax_r.legend(fontsize=8)
    fig.tight_layout()
    Path(png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)


def main() -> None:
    """Parse the arguments; run or plot."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policies", default="uniform,bernoulli_ts,linucb,lints,neural_linear,squarecb")
    parser.add_argument("--rounds", type=int, default=1_000_000)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--every", type=int, default=10, help="Keep every N-th batch in the trace.")
    parser.add_argument("--out", default="benchmarks/results/issue18-long.jsonl")
    parser.add_argument("--stop-at", default=None, help="UTC HH:MM: skip runs that would end later.")
    parser.add_argument("--plot", default=None, help="Plot this JSONL instead of running.")
    parser.add_argument("--png", default="docs/figures/issue18-long.png")
    args = parser.parse_args()
    if args.plot:
        plot(args.plot, args.png)
    else:
        run(args)


if __name__ == "__main__":
    main()
