"""Click prediction on the Open Bandit Dataset sample (real ZOZOTOWN clicks): the ranker (click objective, MMoE over
DCN-v2 + MLP with the position tower) against logistic regression on the same features.

Both logs of the sample (uniform-random and Bernoulli TS, 10,000 impressions each over the same 80 items) are
joined, with request ids prefixed by policy. Clicks are rare (80 in 20,000 impressions), so besides the temporal
split (train 60% / validation 20% / test 20%, about a dozen test clicks) the script pools out-of-fold predictions
of 5 random folds of requests, which scores every click once. AUCs carry bootstrap 95% intervals.

Usage: python benchmarks/multitask_obd.py [--data-dir DIR] [--epochs 20] [--seeds 3]
Writes benchmarks/results/multitask-obd.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

from rankstack.data.dataset import Dataset
from rankstack.data.loaders import load_dataset
from rankstack.data.loaders.open_bandit import SCHEMA
from rankstack.evaluation.classification import log_loss, roc_auc
from rankstack.provenance import code_version, machine_info
from rankstack.ranking.impressions import impression_table, temporal_impression_split
from rankstack.ranking.multitask import MultiTaskConfig, MultiTaskRanker

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
MODELS: dict[str, dict[str, Any]] = {
    "multitask_click": {"objectives": ["click"], "embedding_dim": 4, "mlp_dims": [32], "expert_dims": [16],
                        "tower_dims": [8], "n_experts": 2, "cross_rank": 8, "dropout": 0.2, "batch_size": 256},
    "logistic": {"objectives": ["click"], "architecture": "linear", "batch_size": 256},
}


def joined_logs(data_dir: Path | None) -> Dataset:
    """Random and BTS logs as one dataset with policy-prefixed request ids and shared external ids."""
    frames, items = [], None
    for name, prefix in (("open-bandit", "rand-"), ("open-bandit-bts", "bts-")):
        part = load_dataset(name, data_dir)
        ev = part.events.with_columns(
            pl.Series("user_id", part.user_map.to_external(part.events.get_column("user_id").to_numpy())),
            pl.Series("item_id", part.item_map.to_external(part.events.get_column("item_id").to_numpy())),
            (pl.lit(prefix) + pl.col("request_id")).alias("request_id"),
        )
        frames.append(ev)
        if items is None and part.item_features is not None:
            items = part.item_features.with_columns(
                pl.Series("item_id", part.item_map.to_external(part.item_features.get_column("item_id").to_numpy())))
    return Dataset.from_events(pl.concat(frames), name="open-bandit-all", schema=SCHEMA, item_features=items)


def bootstrap_auc(y: np.ndarray, scores: dict[str, np.ndarray], n: int = 1_000, seed: int = 0) -> dict[str, Any]:
    """95% percentile intervals of each model's AUC and of their difference, resampling test impressions."""
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {k: [] for k in scores}
    names = list(scores)
    diffs: list[float] = []
    for _ in range(n):
        idx = rng.integers(0, len(y), len(y))
        if y[idx].min() == y[idx].max():
            continue
        values = {k: roc_auc(y[idx], s[idx]) for k, s in scores.items()}
        for k, v in values.items():
            draws[k].append(v)
        diffs.append(values[names[0]] - values[names[-1]])
    ci = {k: [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] for k, v in draws.items()}
    ci[f"{names[0]}-{names[-1]}"] = [float(np.percentile(diffs, 2.5)), float(np.percentile(diffs, 97.5))]
    return ci


def fit_predict(train: pl.DataFrame, validation: pl.DataFrame, test: pl.DataFrame, params: dict[str, Any],
                epochs: int, seed: int) -> np.ndarray:
    """Calibrated click probabilities of ``test`` from one model fitted on ``train`` / ``validation``."""
    cfg = MultiTaskConfig.model_validate({**params, "epochs": epochs, "patience": 3, "seed": seed,
                                          "calibration": "platt"})
    return MultiTaskRanker(cfg).fit(train, validation).predict(test)["click"]


def temporal_protocol(table: pl.DataFrame, epochs: int, seeds: int) -> dict[str, Any]:
    """Train on the first 60% of requests, validate on the next 20%, test on the last 20%."""
    split = temporal_impression_split(table, validation_start=0.6, test_start=0.8)
    y = split.test.get_column("click").to_numpy().astype(np.float64)
    scores = {name: np.mean([fit_predict(split.train, split.validation, split.test, params, epochs, seed)
                             for seed in range(seeds)], axis=0) for name, params in MODELS.items()}
    base = float(split.train.get_column("click").cast(pl.Float64).mean() or 0.0)
    return _summary(y, scores, base, {**split.summary(), **{f"{part}_clicks": int(getattr(split, part).get_column(
        "click").sum()) for part in ("train", "validation", "test")}})


def cv_protocol(table: pl.DataFrame, epochs: int, seeds: int, folds: int = 5) -> dict[str, Any]:
    """Requests in ``folds`` random folds: fold k is test, fold k+1 validation, the rest train; predictions of all
    test folds are pooled, so every click is scored once (not temporal: the sample spans one week).
    """
    requests = table.get_column("request_id").unique().sort()
    fold_of = dict(zip(requests.to_list(), np.random.default_rng(0).permutation(len(requests)) % folds,
                       strict=True))
    fold = table.get_column("request_id").replace_strict(fold_of, return_dtype=pl.Int64)
    table = table.with_columns(fold.alias("_fold"))
    parts_y: list[np.ndarray] = []
    parts: dict[str, list[np.ndarray]] = {name: [] for name in MODELS}
    for k in range(folds):
        test = table.filter(pl.col("_fold") == k)
        val = table.filter(pl.col("_fold") == (k + 1) % folds)
        train = table.filter(~pl.col("_fold").is_in([k, (k + 1) % folds]))
        parts_y.append(test.get_column("click").to_numpy().astype(np.float64))
        for name, params in MODELS.items():
            parts[name].append(np.mean([fit_predict(train.drop("_fold"), val.drop("_fold"), test.drop("_fold"),
                                                    params, epochs, seed) for seed in range(seeds)], axis=0))
    y = np.concatenate(parts_y)
    scores = {name: np.concatenate(v) for name, v in parts.items()}
    return _summary(y, scores, float(y.mean()), {"folds": folds, "impressions": len(y), "clicks": int(y.sum())})


def _summary(y: np.ndarray, scores: dict[str, np.ndarray], base_rate: float, sizes: dict[str, Any]
             ) -> dict[str, Any]:
    """AUC and log-loss of each model's (seed-averaged) predictions, with bootstrap intervals."""
    models = {name: {"auc": roc_auc(y, s), "log_loss": log_loss(y, s)} for name, s in scores.items()}
    return {"sizes": sizes, "models": models, "bootstrap_95": bootstrap_auc(y, scores),
            "constant_rate_log_loss": log_loss(y, np.full(len(y), base_rate))}


def main() -> None:
    """Run both protocols for both models, save JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=3, help="model seeds; predictions are averaged over seeds")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    table = impression_table(joined_logs(args.data_dir))
    record: dict[str, Any] = {
        "dataset": "Open Bandit Dataset sample, random + bts logs joined (20,000 impressions, 80 items, 3 slots)",
        "models": MODELS,
        "temporal": temporal_protocol(table, args.epochs, args.seeds),
        "cv5": cv_protocol(table, args.epochs, args.seeds),
        "protocol": "temporal: 60/20/20 over requests in time; cv5: 5 random folds of requests, pooled out-of-fold "
                    "predictions. Both: early stopping on validation, Platt calibration on validation, "
                    "predictions averaged over seeds",
        "command": f"python benchmarks/multitask_obd.py --epochs {args.epochs} --seeds {args.seeds}",
        "machine": machine_info(), "code_version": code_version(),
    }
    record["wall_s"] = round(time.perf_counter() - t0, 1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "multitask-obd.json"
    out.write_text(json.dumps(record, indent=2, default=str) + "\n")
    print(json.dumps({k: record[k] for k in ("temporal", "cv5", "wall_s")}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
