"""LambdaRank against the neural candidate ranker on the same rows: held-out NDCG / recall, fit time, latency.

Fits the sources once per window (training, validation, all of the fit data for serving, as
``rankstack.experiments.ltr_training`` does); for each number of merged candidates C builds the training and
validation rows once and trains both rankers on them (LambdaRank: the config's LightGBM settings or the
defaults; neural: the config's ``model`` or ``NeuralRankerConfig()``), then scores the held-out users' slates
(greedy: the top of the ranker's order over the candidates the pipeline serves). Latency: ``score`` of one
request of C candidates (features + model), one thread, median of 200 requests, in process; the rankers take
turns on each request, so a busy machine slows them alike.

Usage: python benchmarks/neural_vs_lambdarank.py CONFIG [--eval-on validation|test] [--candidates 200,300]
       [--seeds 0,1,2] [--out benchmarks/results/neural_vs_lambdarank.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from ltr_ablation import serve_rows, slates, window_training_rows, with_candidates

from rankstack.data.loaders import load_dataset, standard_split
from rankstack.data.splits import make_split
from rankstack.evaluation.evaluator import Evaluator
from rankstack.experiments.evaluate_run import fit_and_eval_parts
from rankstack.experiments.ltr_training import (
    WindowModels,
    candidate_pipeline,
    fit_window,
    labelled_rows,
    ranker_windows,
)
from rankstack.experiments.offline import evaluate_model
from rankstack.pipeline.config import CandidateRankerStage, LambdaRankStage, NeuralRankStage, load_pipeline_config
from rankstack.provenance import machine_info
from rankstack.ranking.candidate_features import feature_names
from rankstack.ranking.lambdarank import LambdaRankRanker, prior_scores
from rankstack.ranking.lambdarank_train import fit_lambdarank
from rankstack.ranking.neural_ranker import NeuralRanker
from rankstack.ranking.neural_ranker_train import fit_neural

RESULTS = Path(__file__).parent / "results"


def stages(stage: CandidateRankerStage) -> tuple[LambdaRankStage, NeuralRankStage]:
    """The LambdaRank and neural stages sharing ``stage``'s windows and features."""
    shared = {k: v for k, v in stage.model_dump().items() if k in CandidateRankerStage.model_fields}
    lgb = stage if isinstance(stage, LambdaRankStage) else LambdaRankStage(kind="lambdarank", **shared)
    neural = stage if isinstance(stage, NeuralRankStage) else NeuralRankStage(kind="neural", **shared)
    return lgb, neural


def paired_latency_ms(rankers: dict[str, Any], models: WindowModels, users: np.ndarray, k: int) -> dict[str, float]:
    """Median wall time (ms) of each ranker's ``score`` on the same single-user requests, taken in turns."""
    times: dict[str, list[float]] = {name: [] for name in rankers}
    for u in users[:200]:
        batch = models.pipeline.rank_inputs(np.array([u]), k)
        for name, ranker in rankers.items():
            t0 = time.perf_counter()
            ranker.score(batch)
            times[name].append(1000 * (time.perf_counter() - t0))
    return {name: round(float(np.median(t)), 3) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--eval-on", choices=["validation", "test"], default="validation")
    parser.add_argument("--candidates", default="200,300", help="merged candidates per user to compare")
    parser.add_argument("--seeds", default="0", help="neural ranker seeds (each one a training)")
    parser.add_argument("--out", type=Path, default=RESULTS / "neural_vs_lambdarank.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    t_start = time.perf_counter()
    config = load_pipeline_config(args.config)
    if not isinstance(config.ranker, CandidateRankerStage):
        raise SystemExit(f"{args.config}: ranker.kind must be lambdarank or neural")
    lgb, neural = stages(config.ranker)
    data = load_dataset(config.data.name)
    fit_data, held_out = fit_and_eval_parts(make_split(data, config.data.split or standard_split(config.data.name,
                                                                                              data)), args.eval_on)
    ks = config.evaluation.ks
    evaluator = Evaluator.from_datasets(fit_data, held_out, ks=ks)
    windows = ranker_windows(fit_data, lgb.label_events, lgb.validation_events, lgb.min_history, lgb.label_windows,
                             lgb.window_order, lgb.seed)
    serve_m = fit_window(config, lgb, fit_data, print, "serving")
    valid_m = fit_window(config, lgb, windows.before_validation, print, "validation")
    train_ms = [fit_window(config, lgb, before, print, f"training {w + 1}")
                for w, (before, _labels) in enumerate(windows.training)]
    users = np.unique(held_out.events.get_column("user_id").to_numpy()).astype(np.int64)
    names = feature_names(list(serve_m.sources), lgb.sequential is not None, lgb.embedding is not None)
    result: dict[str, Any] = {"config": str(args.config), "dataset": config.data.name, "eval_on": args.eval_on,
                              "features": names, "sources": {n: evaluate_model(s, fit_data, held_out, ks,
                                                                               evaluator=evaluator)
                                                             for n, s in serve_m.sources.items()},
                              "candidates": {}, "load_start": os.getloadavg()[0]}
    print(json.dumps({n: (round(v["ndcg@10"], 4), round(v["recall@20"], 4)) for n, v in result["sources"].items()}))
    for c in [int(x) for x in args.candidates.split(",")]:
        cfg = with_candidates(config, c)
        fitted = [*zip(train_ms, [b for b, _ in windows.training], strict=True),
                  (valid_m, windows.before_validation), (serve_m, fit_data)]
        for m, d in fitted:
            m.pipeline = candidate_pipeline(cfg, m.sources, d)
        train = window_training_rows(train_ms, windows, lgb, max(ks))
        valid, _ = labelled_rows(valid_m, lgb, windows.validation, max(ks))
        feats, mask, items = serve_rows(serve_m, lgb, users, max(ks))

        def held(scores: np.ndarray, mask: np.ndarray = mask, items: np.ndarray = items) -> dict[str, float]:
            return evaluator.evaluate_recs(slates(scores, mask, items, users, held_out.n_users, max(ks)))

        t0 = time.perf_counter()
        text, report = fit_lambdarank(train.with_positives(), valid.with_positives(), names, rounds=lgb.rounds,
                                      early_stopping=lgb.early_stopping, params={"seed": lgb.seed, **lgb.params},
                                      refit=lgb.refit, base=lgb.base)
        lgb_fit = time.perf_counter() - t0
        booster = LambdaRankRanker(text, list(serve_m.sources), serve_m.stats, last_n=lgb.last_n,
                                   sequential=serve_m.sequential, base=lgb.base, embedding=lgb.embedding)
        row: dict[str, Any] = {"train_rows": len(train.labels), "validation_rows": len(valid.labels),
                               "lambdarank": {"metrics": held(booster.booster.predict(feats) +
                                                              prior_scores(feats, names, lgb.base)),
                                              "fit_s": round(lgb_fit, 2), "trees": report["best_iteration"],
                                              "validation_ndcg@10": report["validation_ndcg@10"]},
                               "neural": []}
        print(f"C={c} lambdarank: {row['lambdarank']}", flush=True)
        rankers: dict[str, Any] = {"lambdarank": booster}
        for seed in [int(s) for s in args.seeds.split(",")]:
            t0 = time.perf_counter()
            net, nreport = fit_neural(train, valid, names, neural.model, seed=seed, base=neural.base)
            fit_s = time.perf_counter() - t0
            ranker = NeuralRanker(net, neural.model, list(serve_m.sources), serve_m.stats, last_n=neural.last_n,
                                  sequential=serve_m.sequential, base=neural.base, embedding=neural.embedding)
            entry = {"seed": seed, "metrics": held(ranker.predict(feats)), "fit_s": round(fit_s, 2),
                     "best_epoch": nreport["best_epoch"], "epochs_run": nreport["epochs_run"],
                     "fit_cpu_s": nreport["fit_cpu_s"], "validation_ndcg@10": nreport["validation_ndcg@10"],
                     "load": os.getloadavg()[0]}
            row["neural"].append(entry)
            rankers[f"neural seed {seed}"] = ranker
            print(f"C={c} neural: {entry}", flush=True)
        row["latency_ms_median"] = paired_latency_ms(rankers, serve_m, users, max(ks))
        row["latency_load"] = os.getloadavg()[0]
        print(f"C={c} latency (ms, median of 200): {row['latency_ms_median']}", flush=True)
        result["candidates"][c] = row
    result["wall_s"] = round(time.perf_counter() - t_start, 1)
    result["load_end"] = os.getloadavg()[0]
    result["machine"] = machine_info()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=float) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
