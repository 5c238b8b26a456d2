"""The learned ranker's training windows and feature groups, chosen on validation: how many label windows per
user, which of the order-aware features (last-item co-occurrence, transitions) and embedding features to keep.

Fits the sources once per window (every label window, the validation window, all of the fit data for
serving), builds each window's rows once, then trains one LightGBM LambdaRank model per variant on the first
W label windows' rows with a feature group blanked (NaN, LightGBM's "missing") in training and serving, and
scores the held-out users' slates (greedy: the top of the ranker's order over the served candidates). Each
variant is trained with ``--seeds`` seeds (bagging and feature sampling): mean and spread are reported.

``--recency`` adds the days-since-last-event feature (and a variant without it); ``--groups none,recency`` runs
only the named variants. A sequential feature model is fitted once for every window when the config says
``sequential.fit: once``, as training does.

Usage: python benchmarks/ltr_windows.py CONFIG [--eval-on validation] [--windows 1,2,3] [--seeds 3]
       [--recency] [--out benchmarks/results/ltr_windows.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from ltr_ablation import blank, serve_rows, slates

from rankstack.data.loaders import load_dataset, standard_split
from rankstack.data.splits import make_split
from rankstack.evaluation.evaluator import Evaluator
from rankstack.experiments.evaluate_run import fit_and_eval_parts
from rankstack.experiments.ltr_training import fit_window, labelled_rows, ranker_windows, sequential_once
from rankstack.experiments.offline import evaluate_model, held_out_times, held_out_users
from rankstack.pipeline.config import LambdaRankStage, load_pipeline_config
from rankstack.provenance import machine_info
from rankstack.ranking.candidate_features import (
    EMBEDDING_FEATURES,
    RECENCY_FEATURES,
    RECENT_FEATURES,
    feature_names,
)
from rankstack.ranking.lambdarank_train import RankingRows, fit_lambdarank

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--eval-on", choices=["validation", "test"], default="validation")
    parser.add_argument("--windows", default="1,2,3", help="label windows per user to compare")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--recency", action="store_true", help="add since_last_days (and a variant without it)")
    parser.add_argument("--groups", default=None, help="comma-separated variant names to run (default: all)")
    parser.add_argument("--out", type=Path, default=RESULTS / "ltr_windows.json")
    args = parser.parse_args()
    t_start = time.perf_counter()
    config = load_pipeline_config(args.config)
    stage = config.ranker
    if not isinstance(stage, LambdaRankStage):
        raise SystemExit(f"{args.config}: ranker.kind must be lambdarank")
    if args.recency:
        stage = stage.model_copy(update={"recency": True})
    data = load_dataset(config.data.name)
    split = make_split(data, config.data.split or standard_split(config.data.name, data))
    fit_data, held_out = fit_and_eval_parts(split, args.eval_on)
    ks = config.evaluation.ks
    evaluator = Evaluator.from_datasets(fit_data, held_out, ks=ks)
    most = max(int(w) for w in args.windows.split(","))
    windows = ranker_windows(fit_data, stage.label_events, stage.validation_events, stage.min_history, most)
    once = sequential_once(stage, windows, print)
    serve_m = fit_window(config, stage, fit_data, print, "serving", once)
    users = held_out_users(held_out)
    sources = {n: evaluate_model(s, fit_data, held_out, ks, evaluator=evaluator) for n, s in serve_m.sources.items()}
    print(json.dumps({n: (round(v["ndcg@10"], 4), round(v["recall@20"], 4)) for n, v in sources.items()}), flush=True)
    parts = []
    for w, (before, labels) in enumerate(windows.training):
        rows, recall = labelled_rows(fit_window(config, stage, before, print, f"training {w + 1}", once), stage,
                                     labels, max(ks))
        parts.append(rows)
        print(f"window {w + 1}: {len(rows.groups)} groups, candidate recall {recall:.3f}", flush=True)
    valid, _ = labelled_rows(fit_window(config, stage, windows.before_validation, print, "validation", once), stage,
                             windows.validation, max(ks))
    names = feature_names(list(serve_m.sources), stage.sequential is not None, stage.embedding is not None,
                          stage.recency)
    feats, mask, items = serve_rows(serve_m, stage, users, max(ks), held_out_times(held_out, users))
    col = {n: j for j, n in enumerate(names)}
    groups = {"none": [], "recent (last item, transitions)": [col[n] for n in RECENT_FEATURES]}
    if stage.embedding is not None:
        groups["embedding"] = [col[n] for n in EMBEDDING_FEATURES]
        groups["recent + embedding"] = groups["recent (last item, transitions)"] + groups["embedding"]
    if stage.recency:
        groups["recency"] = [col[n] for n in RECENCY_FEATURES]
    if args.groups:
        groups = {k: v for k, v in groups.items() if k.split(" ")[0] in args.groups.split(",")}
    result: dict[str, Any] = {"config": str(args.config), "dataset": config.data.name, "eval_on": args.eval_on,
                              "sources": sources, "variants": {}}
    for w in (int(x) for x in args.windows.split(",")):
        train = RankingRows.concat(parts[:w])
        for label, cols in groups.items():
            runs = []
            for seed in range(args.seeds):
                text, report = fit_lambdarank(blank(train, cols).with_positives(), blank(valid, cols).with_positives(),
                                              names, rounds=stage.rounds, early_stopping=stage.early_stopping,
                                              params={**stage.params, "seed": seed})
                import lightgbm

                test = feats.copy()
                test[:, cols] = np.nan
                scores = lightgbm.Booster(model_str=text).predict(test, num_threads=1)
                m = evaluator.evaluate_recs(slates(scores, mask, items, users, held_out.n_users, max(ks)))
                runs.append({"ndcg@10": m["ndcg@10"], "recall@20": m["recall@20"], "recall@10": m["recall@10"],
                             "trees": report["best_iteration"], "groups": report["train_groups"]})
            key = f"W={w}, dropped: {label}"
            nd = [r["ndcg@10"] for r in runs]
            rc = [r["recall@20"] for r in runs]
            result["variants"][key] = {"runs": runs, "ndcg@10_mean": float(np.mean(nd)),
                                       "recall@20_mean": float(np.mean(rc))}
            print(f"{key}: ndcg@10 {np.mean(nd):.4f} ({min(nd):.4f}-{max(nd):.4f}) recall@20 {np.mean(rc):.4f} "
                  f"({min(rc):.4f}-{max(rc):.4f}); trees {[r['trees'] for r in runs]}, "
                  f"{runs[0]['groups']} groups", flush=True)
    result["wall_s"] = round(time.perf_counter() - t_start, 1)
    result["machine"] = machine_info()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=float) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
