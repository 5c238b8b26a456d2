"""The simulator pipeline end to end: train ``configs/pipelines/simulator.yaml`` (retrieval → multi-task ranker →
value → exploration) on a simulated log, then replay held-out logged requests through ``Pipeline.recommend`` and
judge the greedy slates with the simulator's truth: the full pipeline, the ranker's order alone, retrieval order.

Usage: python benchmarks/pipeline_sim.py [--impressions 200000 --users 2000 --items 300 --requests 5000]
Writes benchmarks/results/pipeline-sim[-TAG].json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from rankstack.bandits.logging_policies import simulate
from rankstack.data.loaders import load_dataset
from rankstack.experiments.pipeline_training import train_pipeline
from rankstack.experiments.simulator_judging import judge_slates, logged_requests
from rankstack.pipeline.api import RecommendRequest
from rankstack.pipeline.config import PipelineConfig, validate_pipeline_config
from rankstack.pipeline.pipeline import Pipeline
from rankstack.provenance import code_version, machine_info
from rankstack.simulation import MarketplaceSimulator, SimulatorConfig

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def variants(config: PipelineConfig) -> dict[str, PipelineConfig]:
    """Greedy versions of the pipeline: as configured, ranker order without the value stage, retrieval order."""
    greedy = config.model_copy(update={"exploration": config.exploration.model_copy(update={"policy": "greedy"})})
    return {"pipeline": greedy, "ranker_order": greedy.model_copy(update={"value": None}),
            "retrieval_order": greedy.model_copy(update={"ranker": None, "value": None})}


def latency_ms(pipeline: Pipeline, users: list[str], repeats: int = 200) -> dict[str, float]:
    """Median and p99 wall time of single-request ``recommend`` calls (k = 5, with context)."""
    times = []
    for r in range(repeats):
        req = RecommendRequest(user_id=users[r % len(users)], k=5,
                               context={"device": "mobile", "placement": "home", "hour": 12})
        t0 = time.perf_counter()
        pipeline.recommend([req])
        times.append(1000 * (time.perf_counter() - t0))
    return {"p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99))}


def main() -> None:
    """Simulate, train, judge, time, save JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--impressions", type=int, default=200_000)
    parser.add_argument("--users", type=int, default=2_000)
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--requests", type=int, default=5_000, help="held-out logged requests replayed and judged")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared CPU)")
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "sim"
        sim_config = SimulatorConfig(n_users=args.users, n_items=args.items, n_impressions=args.impressions,
                                     seed=args.seed)
        log = simulate(sim_config)
        log.save(folder)
        raw = yaml.safe_load((ROOT / "configs" / "pipelines" / "simulator.yaml").read_text(encoding="utf-8"))
        raw["data"]["name"] = str(folder)
        t1 = time.perf_counter()
        trained = train_pipeline(validate_pipeline_config(raw), log=print)
        t2 = time.perf_counter()
        data = load_dataset(str(folder))
    sim = MarketplaceSimulator(sim_config)
    requests = logged_requests(trained.held_out, args.requests)
    judged: dict[str, Any] = {}
    for name, config in variants(trained.pipeline.config).items():
        pipeline = trained.pipeline.with_config(config)
        judged[name] = judge_slates(pipeline, sim, data, requests, 5)
        print(name, {k: round(v, 3) for k, v in judged[name].items()}, flush=True)
    users = [str(u) for u in data.user_map.to_external(np.arange(min(data.n_users, 200))).to_list()]
    record: dict[str, Any] = {
        "judged": judged,
        "lift_revenue_vs_retrieval": judged["pipeline"]["revenue_per_mille"]
        / judged["retrieval_order"]["revenue_per_mille"] - 1.0,
        "latency_single_request": latency_ms(trained.pipeline, users),
        "metrics": trained.manifest["metrics"]["pipeline"],
        "ranker_held_out": trained.manifest["metrics"].get("ranker"), "timings": trained.manifest["timings"],
        "simulator": sim_config.model_dump(mode="json"), "log_summary": log.summary(),
        "config": trained.manifest["config"],
        "protocol": "simulate; temporal split of events (train/test), pipeline fitted on train (sources on all of it; "
                    "the multi-task ranker on the later impressions, scored by sources fitted on the earlier ones); "
                    f"{len(requests)} held-out logged requests replayed through recommend() with their context; "
                    "greedy slates of 5 judged with the simulator's true click/conversion probabilities "
                    "(slot effects and fatigue from the log's earlier exposures)",
        "command": "python benchmarks/pipeline_sim.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "tag"),
        "train_s": round(t2 - t1, 1), "wall_s": round(time.perf_counter() - t0, 1),
        "machine": machine_info(), "code_version": code_version(),
    }
    print("latency", record["latency_single_request"], "lift", round(record["lift_revenue_vs_retrieval"], 3))
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"pipeline-sim{'-' + args.tag if args.tag else ''}.json"
    out.write_text(json.dumps(record, indent=2, default=str) + "\n")
    print(f"wrote {out} in {record['wall_s']} s")


if __name__ == "__main__":
    main()
