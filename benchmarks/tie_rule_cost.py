"""What the evaluator's tie rule costs: ``Evaluator.evaluate`` on ml-latest-small (leave-one-out, test, fit on
train ∪ validation) with the top-k that puts the lower item id first among equal scores, against plain
``torch.topk`` (ties in any order: the evaluator before issue 13), interleaved, median of ``--repeats``.

Usage: python benchmarks/tie_rule_cost.py [--models popular,itemknn,ease] [--repeats 7] [--threads N]
Writes benchmarks/results/tie_rule_cost.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import torch

import rankstack.retrieval.source as base
from rankstack.data.loaders import load_dataset
from rankstack.data.splits import leave_one_out
from rankstack.evaluation.evaluator import Evaluator
from rankstack.pipeline.components import build_source

RESULTS = Path(__file__).parent / "results"
TopK = Callable[[torch.Tensor, int], tuple[torch.Tensor, torch.Tensor]]


def plain_topk(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.topk`` as the evaluator called it before: the order of tied scores is unspecified."""
    values, indices = torch.topk(scores, k, dim=1)
    return values, indices


def timed(evaluator: Evaluator, model: object, topk: TopK) -> tuple[float, dict[str, float]]:
    """Seconds and metrics of one ``evaluate`` with ``topk`` in place of the library's top-k."""
    kept = base.topk_lowest_id
    base.topk_lowest_id = topk
    try:
        t0 = time.perf_counter()
        metrics = evaluator.evaluate(model)  # type: ignore[arg-type]
        return time.perf_counter() - t0, metrics
    finally:
        base.topk_lowest_id = kept


def main() -> None:
    """Time both top-k variants per model and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="popular,itemknn,ease")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    split = leave_one_out(load_dataset("ml-latest-small"))
    fit = split.train.with_events(pl.concat([split.train.events, split.validation.events]))
    evaluator = Evaluator.from_datasets(fit, split.test, ks=[10, 20])
    rows = []
    for name in args.models.split(","):
        model = build_source(name).fit(fit)
        variants: dict[str, TopK] = {"torch.topk": plain_topk, "lowest id first": base.topk_lowest_id}
        seconds: dict[str, list[float]] = {v: [] for v in variants}
        metrics: dict[str, dict[str, float]] = {}
        for topk in variants.values():
            timed(evaluator, model, topk)  # warm-up
        for _ in range(args.repeats):
            for label, topk in variants.items():
                wall, metrics[label] = timed(evaluator, model, topk)
                seconds[label].append(wall)
        for label in variants:
            row = {"model": name, "top-k": label, "median_s": round(statistics.median(seconds[label]), 4),
                   "min_s": round(min(seconds[label]), 4), "recall@20": round(metrics[label]["recall@20"], 4),
                   "ndcg@20": round(metrics[label]["ndcg@20"], 4)}
            rows.append(row)
            print(row)
    RESULTS.mkdir(exist_ok=True)
    out = {"created_at": datetime.now(UTC).isoformat(timespec="seconds"), "machine": platform.node(),
           "torch_threads": torch.get_num_threads(), "repeats": args.repeats, "users": len(evaluator.user_ids),
           "items": evaluator.n_items, "rows": rows}
    (RESULTS / "tie_rule_cost.json").write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
