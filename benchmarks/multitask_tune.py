"""Tune the multi-task ranker's size on the simulator's *validation* requests, then score the test split once.

The criterion is the mean AUC gap to the oracle (true probabilities) over click and conversion on validation;
only the winner is evaluated on test. Usage:
  python benchmarks/multitask_tune.py [--impressions 1000000] [--epochs 14] [--threads 1]
Writes benchmarks/results/multitask-tune.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from multitask_sim import simulate_world, world_options  # the sibling script (benchmarks/ is on sys.path)

from rankstack.experiments.multitask_run import classification_metrics
from rankstack.provenance import code_version, machine_info
from rankstack.ranking.multitask import MultiTaskConfig, MultiTaskRanker

RESULTS = Path(__file__).parent / "results"
GRID: dict[str, dict[str, Any]] = {
    "default": {},
    "wider": {"embedding_dim": 8, "mlp_dims": [128, 64], "n_experts": 4, "expert_dims": [64], "tower_dims": [32]},
    "wider-cvr-aux": {"embedding_dim": 8, "mlp_dims": [128, 64], "n_experts": 4, "expert_dims": [64],
                      "tower_dims": [32], "cvr_aux_weight": 0.5},
}


def gap(metrics: dict[str, float]) -> float:
    """Mean oracle-minus-model AUC over click and conversion (smaller is better)."""
    return 0.5 * sum(metrics[f"oracle_auc_{h}"] - metrics[f"auc_{h}"] for h in ("click", "conversion"))


def main() -> None:
    """Simulate once, fit every grid entry, choose on validation, test the winner once."""
    parser = world_options(argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter), epochs=14)
    parser.add_argument("--only", default=",".join(GRID), help="comma-separated grid entries to run")
    args = parser.parse_args()
    t0 = time.perf_counter()
    world = simulate_world(args)
    truth, split = world.truth, world.split
    trials: dict[str, Any] = {}
    best_name, best_gap, best_ranker = "", float("inf"), None
    for name in args.only.split(","):
        params = GRID[name]
        t1 = time.perf_counter()
        cfg = MultiTaskConfig.model_validate({**params, "epochs": args.epochs})
        ranker = MultiTaskRanker(cfg).fit(split.train, split.validation)
        val = classification_metrics(ranker, split.validation, truth)
        trials[name] = {"params": params, "validation": val, "validation_gap": gap(val),
                        "fit_s": round(time.perf_counter() - t1, 1), "epochs_run": len(ranker.history_)}
        print(name, f"val gap {gap(val):.4f}", {k: round(v, 4) for k, v in val.items() if "auc" in k}, flush=True)
        if gap(val) < best_gap:
            best_name, best_gap, best_ranker = name, gap(val), ranker
    assert best_ranker is not None
    test = classification_metrics(best_ranker, split.test, truth)
    print("chosen", best_name, {k: round(v, 4) for k, v in test.items()}, flush=True)
    record = {"chosen": best_name, "test": test, "trials": trials, "split": split.summary(),
              "command": "python benchmarks/multitask_tune.py " + " ".join(
                  f"--{k} {v}" for k, v in vars(args).items() if k != "tag"),
              "wall_s": round(time.perf_counter() - t0, 1), "machine": machine_info(), "code_version": code_version()}
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"multitask-tune{'-' + args.tag if args.tag else ''}.json"
    out.write_text(json.dumps(record, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
