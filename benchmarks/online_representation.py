"""The learning exploration stage over two representations, closed loop on the marketplace simulator (issue 18):
``lints`` over the SVD features against ``neural_linear`` (lints over the SASRec ranker's projected vectors).

One simulated world; its history log (under the simulator's logging policy) trains popular + item-kNN → SASRec
ranker once; every variant serves the same pipeline and differs only in the exploration stage (greedy; lints over
SVD φ; NeuralLinear over SASRec φ; LinUCB over each). Traffic is served in chunks through
``Pipeline.recommend_batch`` (``rankstack.experiments.loop_world.run_traffic``); after each chunk its impressions
and clicks are folded into the policy, as the service's learner does. Reported: the simulator's true expected
clicks per slate (never seen by the policy), over all rounds and over the second half, and how much of the true
attraction logit a linear model over each φ can express (R², fixed context). Writes
``benchmarks/results/online_representation.json``.

Usage: OMP_NUM_THREADS=1 python benchmarks/online_representation.py [--rounds 3000] [--seeds 2]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rankstack.bandits.logging_policies import logging_policy
from rankstack.bandits.pool_stats import SCALE
from rankstack.data.dataset import Dataset
from rankstack.experiments.loop_world import LoopWorld, run_traffic
from rankstack.experiments.pipeline_training import fit_stages
from rankstack.experiments.policy_features import fit_policy_features
from rankstack.pipeline.config import validate_pipeline_config
from rankstack.pipeline.online_policy import PolicyFeatures
from rankstack.pipeline.pipeline import Pipeline
from rankstack.simulation.simulator import MarketplaceSimulator
from rankstack.simulation.simulator_config import SimulatorConfig
from rankstack.simulation.world import Requests
from rankstack.state.feedback_log import LoggedEvent

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


def pipeline_config(args: argparse.Namespace, policy: str, representation: str) -> dict[str, Any]:
    """popular + item-kNN → SASRec ranker → the exploration stage under test."""
    learning = {"dim": args.dim, "representation": representation, "warm_start": False}
    exploration: dict[str, Any] = {"policy": policy, "pool": args.pool, "seed": 0}
    if policy != "greedy":
        exploration["learning"] = learning
    return {
        "name": "representation", "data": {"name": "sim-history"},
        "sources": [{"name": "popular", "k": 60, "quota": 10, "weight": 0.3},
                    {"name": "itemknn", "settings": {"neighbors": 50}, "k": 80, "quota": 30}],
        "merge": {"k": 60},
        "ranker": {"source": "sasrec", "settings": {"epochs": args.sasrec_epochs, "hidden_dim": 32, "max_len": 30,
                                                     "validation": False, "batch_size": 256, "device": "cpu"}},
        "exploration": exploration,
    }


VARIANTS = [("greedy", "greedy", "svd"), ("lints-svd", "lints", "svd"), ("neural_linear-sasrec", "neural_linear",
                                                                          "sasrec"),
            ("linucb-svd", "linucb", "svd"), ("linucb-sasrec", "linucb", "sasrec")]


def stream(world: LoopWorld, pipeline: Pipeline, args: argparse.Namespace, seed: int) -> tuple[np.ndarray, int]:
    """(true expected clicks per slate of every served round, events folded), folding each chunk's feedback
    after it."""
    out, seq, folded = [], 0, 0
    for chunk in range(args.rounds // args.chunk):
        logged = run_traffic(world, pipeline, rounds=args.chunk, k=args.k, traffic_seed=10_000 * seed + chunk,
                             prefix=f"s{seed}c{chunk}-")
        out.append(logged.true_clicks.sum(axis=1))
        if pipeline.online is None:
            continue
        events = []
        for row, user in enumerate(logged.requests.users.tolist()):
            for slot, item in enumerate(logged.items[row].tolist()):
                seq += 1
                events.append(LoggedEvent(seq, user, item, "impression"))
                if logged.clicks[row, slot] > 0:
                    seq += 1
                    events.append(LoggedEvent(seq, user, item, "click"))
        folded += pipeline.online.fold(events)
    return np.concatenate(out), folded


def linear_fit(features: PolicyFeatures, sim: MarketplaceSimulator, data: Dataset, pairs: int = 20_000) -> float:
    """R² of the least-squares fit of the true attraction logit (fixed context) on φ over random known
    (user, item) pairs: how much of the simulator's truth a linear model over this φ can express at all."""
    rng = np.random.default_rng(0)
    users = rng.integers(0, data.n_users, pairs)
    items = rng.integers(0, data.n_items, pairs)
    sim_users = np.array([int(u) for u in data.user_map.to_external(users).to_list()], np.int64)
    sim_items = np.array([int(i) for i in data.item_map.to_external(items).to_list()], np.int64)
    zeros = np.zeros(pairs, np.int64)
    req = Requests(sim_users, np.full(pairs, 0.5), np.full(pairs, 12), zeros, zeros)
    truth = sim.world.attraction_logit(req, sim_items)
    phi = features.phi_rows(users, items) / SCALE
    coef, *_ = np.linalg.lstsq(phi, truth, rcond=None)
    return float(1.0 - np.var(truth - phi @ coef) / np.var(truth))


def main() -> None:
    """Train once, stream every variant over the same traffic seeds, print and save the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--history", type=int, default=100_000, help="impressions in the training log")
    parser.add_argument("--rounds", type=int, default=3000)
    parser.add_argument("--chunk", type=int, default=100)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--pool", type=int, default=30)
    parser.add_argument("--dim", type=int, default=8)
    parser.add_argument("--sasrec-epochs", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--world-seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    started, t0 = datetime.now(UTC), time.perf_counter()
    sim = MarketplaceSimulator(SimulatorConfig(n_users=args.users, n_items=args.items, n_impressions=args.history,
                                               seed=args.world_seed))
    data = sim.run(logging_policy(sim)).to_dataset("sim-history")
    trained = fit_stages(validate_pipeline_config(pipeline_config(args, "neural_linear", "sasrec")), data, print)
    svd = fit_policy_features(validate_pipeline_config(pipeline_config(args, "lints", "svd")).exploration.learning,
                              data)  # type: ignore[arg-type]
    train_s = time.perf_counter() - t0
    users = np.asarray(data.user_map.to_internal(list(range(sim.world.n_users)), strict=False), np.int64)
    items = np.array([int(i) for i in data.item_map.to_external(np.arange(data.n_items)).to_list()], np.int64)
    r2 = {"svd": linear_fit(svd, sim, data), "sasrec": linear_fit(trained.policy, sim, data)}  # type: ignore[arg-type]
    print(f"R² of the true attraction logit on φ: {r2}", flush=True)
    rows: dict[str, Any] = {}
    for name, policy, representation in VARIANTS:
        config = validate_pipeline_config(pipeline_config(args, policy, representation))
        per_seed = []
        for seed in range(args.seeds):
            parts = replace(trained, config=config, policy=(svd if representation == "svd" else trained.policy)
                            if policy != "greedy" else None)
            pipeline = Pipeline(parts)
            world = LoopWorld(sim, data, pipeline, users, items, train_s)
            clicks, folded = stream(world, pipeline, args, seed)
            half = len(clicks) // 2
            per_seed.append({"all": float(clicks.mean()), "second_half": float(clicks[half:].mean()),
                             "folded": folded})
        rows[name] = {"per_seed": per_seed, "all": float(np.mean([s["all"] for s in per_seed])),
                      "second_half": float(np.mean([s["second_half"] for s in per_seed]))}
        print(f"{name:24s} true clicks/slate: all {rows[name]['all']:.4f}, second half "
              f"{rows[name]['second_half']:.4f}; folded {[s['folded'] for s in per_seed]}  "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
    record = {"load_after": Path("/proc/loadavg").read_text().split()[:3],
              "started": started.isoformat(timespec="seconds"), "wall_s": round(time.perf_counter() - t0, 1),
              "train_s": round(train_s, 1), "args": vars(args), "phi_r2": r2, "results": rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "online_representation.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
