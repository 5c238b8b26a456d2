"""Benchmark the baselines with the standard protocols; writes benchmarks/results/baselines-<dataset>-<model>.json.

Usage: python benchmarks/baselines.py --dataset gowalla --model ease --set l2=80 [--data-dir DIR]
Prints one markdown table row for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import yaml

from rankstack.data.loaders import load_dataset, standard_split
from rankstack.experiments.evaluate_run import run_experiment

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    """Parse arguments, run one experiment, save JSON, print a markdown row."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--set", action="append", default=[], help="key=value model setting")
    parser.add_argument("--k", default="10,20")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--tag", default="", help="suffix for the result file name")
    args = parser.parse_args()
    params = {kv.split("=", 1)[0]: yaml.safe_load(kv.split("=", 1)[1]) for kv in args.set}
    ks = [int(k) for k in args.k.split(",")]
    t0 = time.perf_counter()
    data = load_dataset(args.dataset, args.data_dir)
    load_s = time.perf_counter() - t0
    record = run_experiment(data, standard_split(args.dataset, data), args.model, params, ks=ks, load_s=load_s)
    record["command"] = "python benchmarks/baselines.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in (("dataset", args.dataset), ("model", args.model)))
    record["command"] += "".join(f" --set {kv}" for kv in args.set)
    RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = f"-{args.tag}" if args.tag else ""
    out = RESULTS / f"baselines-{args.dataset}-{args.model}{suffix}.json"
    out.write_text(json.dumps(record, indent=2, default=str) + "\n")
    m, t, mach = record["metrics"], record["timings"], record["machine"]
    kmax = max(ks)
    print(json.dumps(m, indent=1))
    print(
        f"| {args.dataset} | {args.model} {params or ''} | {m[f'recall@{kmax}']:.4f} | {m[f'ndcg@{kmax}']:.4f} "
        f"| {t['fit_s']:.1f} s | {t['evaluate_s']:.1f} s | {mach['cpu']} ({mach['cpu_count']} cores), "
        f"gpu={mach['gpu']} | {record['created_at'][:10]} |"
    )


if __name__ == "__main__":
    main()
