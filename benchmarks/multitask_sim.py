"""Multi-objective ranking on the marketplace simulator: per-objective AUC / log-loss / ECE of the multi-task
ranker, single-task models and logistic regression next to the oracle (true probabilities); revenue per 1,000
impressions of value-ranked vs click-ranked slates judged with the simulator's truth; a value-weight sweep.

Usage: python benchmarks/multitask_sim.py [--impressions 1000000] [--epochs 10] [--threads 1]
Writes benchmarks/results/multitask-sim[-TAG].json and docs/figures/multitask-sim[-TAG]-*.png.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import torch

from rankstack.bandits.logging_policies import logging_policy
from rankstack.data.dataset import Dataset
from rankstack.experiments.multitask_run import (
    ExperimentConfig,
    classification_metrics,
    judge_candidates,
    ranking_value_metrics,
)
from rankstack.provenance import code_version, machine_info
from rankstack.ranking.impressions import ImpressionSplit, impression_table, temporal_impression_split
from rankstack.ranking.multitask import MultiTaskConfig, MultiTaskRanker
from rankstack.ranking.plots import plot_reliability
from rankstack.simulation import MarketplaceSimulator, SimulatorConfig
from rankstack.simulation.log import SimulationLog
from rankstack.simulation.slates import slate_metrics
from rankstack.value import ValueObjective, plot_pareto, sweep_weights

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
FIGURES = ROOT / "docs" / "figures"
MODELS: dict[str, dict[str, Any]] = {
    "multitask": {"objectives": ["click", "conversion", "revenue"]},
    "single_click": {"objectives": ["click"]},
    "single_conversion": {"objectives": ["conversion"]},
    "logistic": {"objectives": ["click", "conversion"], "architecture": "linear"},
}
SWEEP = [0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0]


@dataclass(frozen=True)
class World:
    """One simulated run prepared for the multi-task benchmarks: the log, its truth and the impression split."""

    sim: MarketplaceSimulator
    log: SimulationLog
    dataset: Dataset
    truth: pl.DataFrame
    table: pl.DataFrame
    split: ImpressionSplit


def world_options(parser: argparse.ArgumentParser, epochs: int) -> argparse.ArgumentParser:
    """The simulated world and training options the multi-task benchmarks share."""
    parser.add_argument("--impressions", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (1 is fastest on a shared CPU); the models train on CUDA when present")
    parser.add_argument("--tag", default="")
    return parser


def simulate_world(args: argparse.Namespace) -> World:
    """Set the torch threads, simulate the world the options describe, build and split its impression table."""
    torch.set_num_threads(args.threads)
    sim = MarketplaceSimulator(SimulatorConfig(n_users=args.users, n_items=args.items,
                                               n_impressions=args.impressions, seed=args.seed))
    log = sim.run(logging_policy(sim))
    dataset = log.to_dataset()
    table = impression_table(dataset)
    return World(sim, log, dataset, log.truth(), table, temporal_impression_split(table))


def main() -> None:
    """Simulate, train every model, evaluate, sweep, plot, save JSON."""
    parser = world_options(argparse.ArgumentParser(description=__doc__), epochs=10)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--slate-requests", type=int, default=5_000)
    args = parser.parse_args()
    t0 = time.perf_counter()
    world = simulate_world(args)
    sim, log, dataset, truth, table, split = (world.sim, world.log, world.dataset, world.truth, world.table,
                                              world.split)
    prep_s = time.perf_counter() - t0
    print(f"simulated + prepared in {prep_s:.1f} s: {split.summary()} {log.summary()}", flush=True)
    results: dict[str, Any] = {}
    rankers: dict[str, MultiTaskRanker] = {}
    for name in args.models.split(","):
        t1 = time.perf_counter()
        cfg = MultiTaskConfig.model_validate({**MODELS[name], "epochs": args.epochs})
        ranker = MultiTaskRanker(cfg).fit(split.train, split.validation)
        fit_s = time.perf_counter() - t1
        metrics = classification_metrics(ranker, split.test, truth)
        results[name] = {"config": cfg.model_dump(mode="json"), "metrics": metrics, "fit_s": round(fit_s, 1),
                         "epochs_run": len(ranker.history_), "history": ranker.history_,
                         "calibrators": {k: v.kind for k, v in ranker.calibrators_.items()},
                         "device": str(ranker.device)}
        rankers[name] = ranker
        print(name, f"fit {fit_s:.0f} s", {k: round(v, 4) for k, v in metrics.items()}, flush=True)
    record: dict[str, Any] = {"models": results}
    if "multitask" in rankers:
        record.update(_value_and_plots(sim, dataset, table, split.test, truth, rankers["multitask"], args))
    record.update({
        "simulator": sim.config.model_dump(mode="json"), "log_summary": log.summary(), "split": split.summary(),
        "protocol": "temporal split over requests 70/15/15; fit on train with early stopping on validation, "
                    "calibrate on validation, score test once; AUC on raw scores, log-loss and ECE (20 equal-count "
                    "bins) after calibration",
        "command": "python benchmarks/multitask_sim.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "tag"),
        "wall_s": round(time.perf_counter() - t0, 1), "machine": machine_info(), "code_version": code_version(),
    })
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"multitask-sim{'-' + args.tag if args.tag else ''}.json"
    out.write_text(json.dumps(record, indent=2, default=str) + "\n")
    print(f"wrote {out} in {record['wall_s']} s")
    for name, res in results.items():
        m = res["metrics"]
        gaps = " ".join(f"{obj} AUC {m[f'auc_{obj}']:.4f} (oracle {m[f'oracle_auc_{obj}']:.4f}, gap "
                        f"{m[f'auc_{obj}'] - m[f'oracle_auc_{obj}']:+.4f})"
                        for obj in ("click", "conversion") if f"auc_{obj}" in m)
        print(f"DONE multitask-sim {args.impressions} impressions {name}: {gaps}; fit {res['fit_s']} s "
              f"({res['epochs_run']} epochs) on {res['device']}; wall {record['wall_s']} s", flush=True)


def _value_and_plots(sim: MarketplaceSimulator, dataset: Any, table: Any, test: Any, truth: Any,
                     ranker: MultiTaskRanker, args: argparse.Namespace) -> dict[str, Any]:
    """Slate revenue (value vs click ranking), the click-weight sweep and the reliability / Pareto figures."""
    exp = ExperimentConfig(slate_requests=args.slate_requests)
    judged = judge_candidates(ranker, sim, dataset, table, test, exp)
    slates = ranking_value_metrics(sim, judged, exp.slate_size)
    print("slates", {k: round(v, 3) for k, v in slates.items()}, flush=True)
    cands, pred = judged.candidates, judged.predictions

    def evaluate(objective: ValueObjective) -> dict[str, float]:
        return slate_metrics(sim, cands, cands.matrix(objective.score(pred)), exp.slate_size)

    points = sweep_weights(ValueObjective.revenue_plus_clicks(0.0), 1, SWEEP, evaluate)
    FIGURES.mkdir(parents=True, exist_ok=True)
    stem = f"multitask-sim{'-' + args.tag if args.tag else ''}"
    plot_pareto(points, FIGURES / f"{stem}-pareto.png",
                title="value = pCTR·pCVR·payout + w·pCTR (label: w), truth-judged")
    y_click = test.get_column("click").to_numpy()
    y_conv = test.get_column("conversion").to_numpy()
    raw, cal = ranker.predict(test, calibrated=False), ranker.predict(test)
    oracle = test.select("request_id", "position").join(truth, on=["request_id", "position"], how="left")
    for head, y, col in (("click", y_click, "p_click"), ("conversion", y_conv, "p_conversion")):
        plot_reliability({"raw": (y, raw[head]), "calibrated": (y, cal[head]),
                          "oracle": (y, oracle.get_column(col).to_numpy())},
                         FIGURES / f"{stem}-reliability-{head}.png", title=f"{head}: multi-task ranker, test")
    return {"slates": slates, "sweep": [{"weight": p.weight, "objective": p.objective, **p.metrics} for p in points]}


if __name__ == "__main__":
    main()
