"""SASRec (or two-tower) trained in one process vs with DDP on Ray Train with 1 and 2 workers, on the same data:
training examples per second and the metric each reaches (docs/benchmarks.md, "#19 DDP").

Examples: SASRec's training sequences (one window per user and epoch), two-tower's training events. Throughput is
examples × epochs over the fit's own clock at its last epoch (set-up, training, the final validation pass and, on
Ray, the per-epoch checkpoints; not Ray's start-up, which ``wall_s`` includes). Every process runs one torch thread
(Ray sets ``OMP_NUM_THREADS=1`` per worker; ``torch.set_num_threads(1)`` here and in each worker).

Usage: OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/ddp_throughput.py --dataset movielens-100k \
    --model sasrec --epochs 3 --workers 1,2 --out benchmarks/results/issue19-ddp-sasrec-ml100k.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rankstack.data.loaders import open_dataset, standard_split
from rankstack.data.splits import make_split
from rankstack.distributed.backend import Backend
from rankstack.distributed.cluster import ray_session
from rankstack.distributed.torch_training import fit_source_on_ray
from rankstack.evaluation.evaluator import Evaluator
from rankstack.experiments.evaluate_run import fit_and_eval_parts
from rankstack.pipeline.components import build_source


def examples_per_epoch(model: str, fit: Any) -> int:
    """SASRec: users with ≥ 2 training events once the validation item is held out; two-tower: training events."""
    seqs = fit.sequences()
    if model == "sasrec":
        return sum(1 for s in seqs if len(s[:-1] if len(s) >= 3 else s) >= 2)
    return int(sum(len(s) for s in seqs))


def row(label: str, source: Any, fit: Any, test: Any, examples: int, wall_s: float, workers: int) -> dict[str, Any]:
    """One result: throughput (total and per worker), validation and test figures."""
    summary = source.fit_summary()
    fit_s = float(source.history_[-1]["wall_s"])
    rate = examples * summary.epochs_run / fit_s
    metrics = Evaluator(fit.interaction_matrix(binary=True), test.interaction_matrix(binary=True),
                        ks=[10, 20]).evaluate(source)
    out = {"run": label, "workers": workers, "epochs": summary.epochs_run, "fit_s": round(fit_s, 2),
           "wall_s": round(wall_s, 2), "examples_per_s": round(rate, 1),
           "examples_per_s_per_worker": round(rate / workers, 1),
           "validation": summary.curve[-1][1] if summary.curve else None,
           "test_ndcg@10": round(metrics["ndcg@10"], 4), "test_hr@10": round(metrics["hr@10"], 4),
           "test_recall@20": round(metrics["recall@20"], 4)}
    print(json.dumps(out), flush=True)
    return out


def main() -> None:
    """Single process, then 1 and 2 Ray workers (or the single process last); writes the rows with the machine's
    load average before each run and at the end."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="movielens-100k")
    parser.add_argument("--model", default="sasrec", choices=["sasrec", "two-tower"])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--single-last", action="store_true", help="run the single process after the Ray runs")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    loaded = open_dataset(args.dataset, None, None)
    data = loaded.dataset
    kind = standard_split(args.dataset, data, loaded.info, requested="leave_one_out").kind
    fit, test = fit_and_eval_parts(make_split(data, kind), "test")
    settings: dict[str, Any] = {"epochs": args.epochs, "device": "cpu", "seed": 0}
    if args.model == "sasrec":  # validate once, after the last epoch: the clock is the training's
        settings |= {"eval_every": args.epochs, "patience": args.epochs}
    examples = examples_per_epoch(args.model, fit)
    loads = [os.getloadavg()]
    rows = []

    def single() -> None:
        t = time.perf_counter()
        local = build_source(args.model, settings).fit(fit)
        rows.append(row("single process", local, fit, test, examples, time.perf_counter() - t, 1))

    if not args.single_last:
        single()
    counts = [int(w) for w in args.workers.split(",")]
    with ray_session(Backend("ray", max(counts))):  # one local Ray instance (Ray Train polls every 0.5 s)
        for workers in counts:
            loads.append(os.getloadavg())
            t = time.perf_counter()
            model, _ = fit_source_on_ray(args.model, settings, fit, Backend("ray", workers))
            rows.append(row(f"Ray Train DDP, {workers} worker(s)", model, fit, test, examples,
                            time.perf_counter() - t, workers))
    if args.single_last:
        loads.append(os.getloadavg())
        single()
    loads.append(os.getloadavg())
    record = {"dataset": data.name, "split": kind, "model": args.model, "settings": settings,
              "examples_per_epoch": examples, "rows": rows, "loadavg": [list(np.round(x, 2)) for x in loads]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
