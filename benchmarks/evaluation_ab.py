"""Issue 15 A/B of full-ranking evaluation on one fitted model, alternating in one process: "before" scores the
way rankstack did before (EASE: SciPy CSR × a column-major B, which SciPy copies every batch; train items masked
in a copy of the scores), "after" is the model as it scores now; checks the metrics are identical.

Usage: python benchmarks/evaluation_ab.py DATASET MODEL [--repeats 2] [--profile]
DATASET is a dataset name (its standard split, evaluated on test) or ``gowalla:N`` (Gowalla's N most frequent
items, per-user random 80/20 split). ``--profile`` prints a cProfile of one "after" evaluation.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

from rankstack.data.dataset import Dataset
from rankstack.data.loaders import load_dataset, standard_split
from rankstack.data.splits import Split, make_split, random_split
from rankstack.evaluation.evaluator import Evaluator
from rankstack.experiments.evaluate_run import fit_and_eval_parts
from rankstack.pipeline.components import build_source


class Before:
    """The old scoring: EASE's B column-major (as its fit used to leave it); no ``fresh_scores``, so masked in a
    copy."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.weights = np.asfortranarray(model.weights_.numpy()) if hasattr(model, "weights_") else None

    def score(self, users: np.ndarray) -> torch.Tensor:
        """X_u B through SciPy with a column-major B, or the model's own scores."""
        if self.weights is not None:
            return torch.from_numpy(self.model.train_[users] @ self.weights)
        return torch.as_tensor(self.model.score(users))


def load(name: str) -> tuple[Dataset, Split]:
    """A dataset and its split (``gowalla:N``: the N most frequent Gowalla items, random 80/20 per user)."""
    if name.startswith("gowalla:"):
        data = load_dataset("gowalla", None)
        top = data.events.group_by("item_id").len().sort(["len", "item_id"], descending=[True, False])
        keep = top.head(int(name.split(":")[1])).get_column("item_id").implode()
        events = data.events.filter(pl.col("item_id").is_in(keep)).drop("split", strict=False)
        data = Dataset.from_events(events, name=name.replace(":", "-"))
        return data, random_split(data, test_ratio=0.2, seed=0)
    data = load_dataset(name, None)
    return data, make_split(data, standard_split(name, data))


def main() -> None:
    """Fit once, then time before/after evaluations alternately."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset")
    parser.add_argument("model")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    data, split = load(args.dataset)
    fit, held = fit_and_eval_parts(split, "test")
    start = time.perf_counter()
    model = build_source(args.model, {"device": "cpu"} if args.model == "ease" else {}).fit(fit)
    print(f"{args.dataset} {args.model}: {data.n_users} users, {data.n_items} items; "
          f"fit {time.perf_counter() - start:.1f} s", flush=True)
    evaluator = Evaluator.from_datasets(fit, held, ks=(10, 20), device="cpu")
    results: dict[str, list[dict[str, float]]] = {}
    for _ in range(args.repeats):
        for label, scorer in (("before", Before(model)), ("after", model)):
            loadavg = Path("/proc/loadavg").read_text().split()[0]
            start = time.perf_counter()
            results.setdefault(label, []).append(evaluator.evaluate(scorer))
            print(f"  {label}: evaluate {time.perf_counter() - start:.1f} s (loadavg at start {loadavg})", flush=True)
    first = results["after"][0]
    same = all(m == first for runs in results.values() for m in runs)
    print(f"  metrics identical: {same}", {k: first[k] for k in ("recall@20", "ndcg@20")}, flush=True)
    if args.profile:
        profile = cProfile.Profile()
        profile.runcall(evaluator.evaluate, model)
        pstats.Stats(profile).sort_stats("tottime").print_stats(12)


if __name__ == "__main__":
    main()
