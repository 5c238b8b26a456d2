"""Grid-search a model's settings on the validation split, then evaluate the best once on test.

Usage: python benchmarks/tune.py --dataset gowalla --model itemknn --grid neighbors=50,200,500 \
           --grid shrink=0,10,50 --metric recall@20
Writes benchmarks/results/tune-<dataset>-<model>.json with every validation score and the test result.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path
from typing import Any

import yaml

from rankstack.data.loaders import load_dataset, standard_split
from rankstack.data.splits import make_split
from rankstack.experiments.evaluate_run import evaluate_source, fit_and_eval_parts
from rankstack.pipeline.components import build_source
from rankstack.provenance import code_version, machine_info

RESULTS = Path(__file__).parent / "results"


def _grid(specs: list[str]) -> list[dict[str, Any]]:
    keys, values = [], []
    for spec in specs:
        key, _, raw = spec.partition("=")
        keys.append(key)
        values.append([yaml.safe_load(v) for v in raw.split(",")])
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*values)]


def main() -> None:
    """Tune on validation, report test once."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--grid", action="append", default=[], help="key=v1,v2,...")
    parser.add_argument("--metric", default="recall@20")
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()
    ks = sorted({10, 20, int(args.metric.split("@")[1])})
    started = time.perf_counter()
    data = load_dataset(args.dataset, args.data_dir)
    split = make_split(data, standard_split(args.dataset, data))
    fit, held = fit_and_eval_parts(split, "validation")
    trials = []
    for params in _grid(args.grid):
        metrics, timings = evaluate_source(build_source(args.model, params), fit, held, ks)
        trials.append({"params": params, "validation": metrics, "timings": timings})
        print(f"{params}: {args.metric}={metrics[args.metric]:.4f} ({timings['fit_s']:.1f} s fit)", flush=True)
    best = max(trials, key=lambda t: t["validation"][args.metric])
    fit_t, test_t = fit_and_eval_parts(split, "test")
    test_metrics, test_timings = evaluate_source(build_source(args.model, best["params"]), fit_t, test_t, ks)
    record = {
        "dataset": args.dataset, "model": args.model, "metric": args.metric, "trials": trials,
        "best_params": best["params"], "test": test_metrics, "test_timings": test_timings,
        "wall_s": round(time.perf_counter() - started, 1), "machine": machine_info(), "code_version": code_version(),
        "command": "python benchmarks/tune.py " + " ".join(
            [f"--dataset {args.dataset}", f"--model {args.model}", *(f"--grid {g}" for g in args.grid),
             f"--metric {args.metric}"]),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"tune-{args.dataset}-{args.model}.json"
    out.write_text(json.dumps(record, indent=2, default=str) + "\n")
    print(f"best {best['params']} → test " + ", ".join(f"{k}={v:.4f}" for k, v in test_metrics.items()
                                                        if k.split("@")[0] in ("recall", "ndcg", "hr")))


if __name__ == "__main__":
    main()
