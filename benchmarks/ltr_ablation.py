"""The LambdaRank candidate ranker against its sources: candidates per user, drop-one feature groups, ranker latency.

Fits the sources once per window (training window, validation window, all of the fit data for serving, as
``rankstack.experiments.ltr_training`` does), then for each number of merged candidates C trains the ranker and
scores the held-out users' slates (greedy: the top of the ranker's order over the same candidates the pipeline
serves). Drop-one ablations blank a feature group (NaN: LightGBM's "missing") in training and serving at the
config's ``merge.k``. Latency: ``LambdaRankRanker.score`` of one request of C candidates, one thread, median of
200 requests.

Usage: python benchmarks/ltr_ablation.py CONFIG [--eval-on validation|test] [--candidates 50,100,200,500]
       [--drop-one] [--out benchmarks/results/ltr_ablation.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

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
from rankstack.pipeline.config import LambdaRankStage, PipelineConfig, load_pipeline_config
from rankstack.provenance import machine_info
from rankstack.ranking.candidate_features import (
    EMBEDDING_FEATURES,
    RECENT_FEATURES,
    candidate_features,
    feature_names,
)
from rankstack.ranking.lambdarank import LambdaRankRanker, embedding_vectors, sequential_scores
from rankstack.ranking.lambdarank_train import RankingRows, fit_lambdarank

RESULTS = Path(__file__).parent / "results"


def with_candidates(config: PipelineConfig, c: int) -> PipelineConfig:
    """``config`` merging ``c`` candidates: each source retrieves at least ``c``, quotas scaled by c / merge.k."""
    scale = c / config.merge.k
    sources = [s.model_copy(update={"k": max(s.k, c), "quota": int(s.quota * scale)}) for s in config.sources]
    return config.model_copy(update={"sources": sources, "merge": config.merge.model_copy(update={"k": c})})


def groups(names: list[str], sources: list[str]) -> dict[str, list[int]]:
    """Feature groups for drop-one: one per source, and the item, user, history and sequential blocks."""
    col = {n: j for j, n in enumerate(names)}
    out = {f"source {s}": [col[f"{k}_{s}"] for k in ("score", "rank", "proposed")] for s in sources}
    out |= {"merged rank, n_proposed": [col["merged_rank"], col["n_proposed"]],
            "popularity + trend": [col["pop_all"], col["pop_recent"], col["pop_trend"]],
            "item age": [col["item_age_days"]], "user activity": [col["user_events"], col["history_len"]],
            "co-occurrence": [col["cooc_sum"], col["cooc_max"], col["cooc_cos"]],
            "genre match": [col["genre_match"]],
            "recent order (cooc_cos_last1, trans_last1, trans_last5)": [col[n] for n in RECENT_FEATURES]}
    if "emb_max" in col:
        out["embedding similarity"] = [col[n] for n in EMBEDDING_FEATURES]
    if "seq_score" in col:
        out["sequential score"] = [col["seq_score"]]
    return out


def blank(rows: RankingRows, columns: list[int]) -> RankingRows:
    """``rows`` with ``columns`` set to NaN."""
    feats = rows.features.copy()
    feats[:, columns] = np.nan
    return RankingRows(feats, rows.labels, rows.groups, rows.users)


def window_training_rows(models: list[WindowModels], windows: Any, stage: LambdaRankStage, k: int) -> RankingRows:
    """The training rows of every label window, each from the models fitted before it."""
    return RankingRows.concat([labelled_rows(m, stage, labels, k)[0]
                               for m, (_before, labels) in zip(models, windows.training, strict=True)])


def serve_rows(models: WindowModels, stage: LambdaRankStage, users: np.ndarray, k: int,
               times: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features, valid mask, item ids) of the held-out users' served candidates (requests at ``times`` [users])."""
    feats, masks, items = [], [], []
    vectors = embedding_vectors(models.sources, stage.embedding)
    for start in range(0, len(users), 256):
        at = None if times is None else times[start: start + 256]
        batch = models.pipeline.rank_inputs(users[start: start + 256], k, times=at)
        f, v = candidate_features(batch, models.stats, list(models.sources), last_n=stage.last_n,
                                  seq_scores=sequential_scores(models.sequential, batch), item_vectors=vectors,
                                  recency=stage.recency)
        feats.append(f)
        masks.append(v)
        items.append(batch.item_ids)
    width = max(m.shape[1] for m in masks)
    pad = [np.pad(m, ((0, 0), (0, width - m.shape[1]))) for m in masks]
    ids = [np.pad(i, ((0, 0), (0, width - i.shape[1])), constant_values=-1) for i in items]
    return np.concatenate(feats), np.concatenate(pad), np.concatenate(ids)


def slates(scores: np.ndarray, valid: np.ndarray, items: np.ndarray, users: np.ndarray, n_users: int,
           k: int) -> np.ndarray:
    """Recs [n_users, k]: each held-out user's candidates by descending score (rows of other users: -1)."""
    full = np.full(valid.shape, -np.inf)
    full[valid] = scores
    order = np.argsort(-full, axis=1, kind="stable")[:, :k]
    recs = np.full((n_users, k), -1, np.int64)
    top = np.take_along_axis(np.where(valid, items, -1), order, axis=1)
    recs[users] = top
    return recs


def latency_ms(ranker: LambdaRankRanker, models: WindowModels, users: np.ndarray, k: int) -> float:
    """Median wall time (ms) of ``ranker.score`` on single-user requests."""
    times = []
    for u in users[:200]:
        batch = models.pipeline.rank_inputs(np.array([u]), k)
        t0 = time.perf_counter()
        ranker.score(batch)
        times.append(1000 * (time.perf_counter() - t0))
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--eval-on", choices=["validation", "test"], default="validation")
    parser.add_argument("--candidates", default="", help="merged candidates per user to compare (50,100,200)")
    parser.add_argument("--drop-one", action="store_true")
    parser.add_argument("--label-events", default="", help="label-window sizes to compare (e.g. 1,5,10)")
    parser.add_argument("--out", type=Path, default=RESULTS / "ltr_ablation.json")
    parser.add_argument("--save-rows", type=Path, default=None, help="write each label window's rows (npz) here")
    args = parser.parse_args()
    t_start = time.perf_counter()
    config = load_pipeline_config(args.config)
    stage = config.ranker
    if not isinstance(stage, LambdaRankStage):
        raise SystemExit(f"{args.config}: ranker.kind must be lambdarank")
    data = load_dataset(config.data.name)
    fit_data, held_out = fit_and_eval_parts(make_split(data, config.data.split or standard_split(config.data.name,
                                                                                              data)), args.eval_on)
    say = print
    ks = config.evaluation.ks
    evaluator = Evaluator.from_datasets(fit_data, held_out, ks=ks)
    serve_m = fit_window(config, stage, fit_data, say, "serving")
    users = np.unique(held_out.events.get_column("user_id").to_numpy()).astype(np.int64)
    result: dict[str, Any] = {"config": str(args.config), "dataset": config.data.name, "eval_on": args.eval_on,
                              "sources": {n: evaluate_model(s, fit_data, held_out, ks, evaluator=evaluator)
                                          for n, s in serve_m.sources.items()},
                              "label_events": {}, "candidates": {}, "drop_one": {}}
    print(json.dumps({n: (round(v["ndcg@10"], 4), round(v["recall@20"], 4)) for n, v in result["sources"].items()}))
    names = feature_names(list(serve_m.sources), stage.sequential is not None, stage.embedding is not None)
    labels_list = [int(x) for x in args.label_events.split(",")] if args.label_events else [stage.label_events]
    valid_m, valid_size = None, -1
    first: tuple[Any, list[WindowModels]] | None = None
    test = serve_rows(serve_m, stage, users, max(ks))
    for n_labels in labels_list:
        windows = ranker_windows(fit_data, n_labels, stage.validation_events, stage.min_history, stage.label_windows)
        if len(windows.before_validation) != valid_size:
            valid_m = fit_window(config, stage, windows.before_validation, say, "validation")
            valid_size = len(windows.before_validation)
        assert valid_m is not None
        train_ms = [fit_window(config, stage, before, say, f"training L={n_labels} window {w + 1}")
                    for w, (before, _labels) in enumerate(windows.training)]
        first = first or (windows, train_ms)
        train = window_training_rows(train_ms, windows, stage, max(ks))
        valid, _ = labelled_rows(valid_m, stage, windows.validation, max(ks))
        if args.save_rows is not None:
            args.save_rows.mkdir(parents=True, exist_ok=True)
            np.savez(args.save_rows / f"rows_L{n_labels}.npz", train_x=train.features, train_y=train.labels,
                     train_g=train.groups, valid_x=valid.features, valid_y=valid.labels, valid_g=valid.groups,
                     test_x=test[0], test_mask=test[1], test_items=test[2], users=users, names=np.array(names))
        for refit in (False, True):
            text, report = fit_lambdarank(train.with_positives(), valid.with_positives(), names,
                                          rounds=stage.rounds, early_stopping=stage.early_stopping,
                                          params={"seed": stage.seed, **stage.params}, refit=refit)
            booster = LambdaRankRanker(text, list(serve_m.sources), serve_m.stats, last_n=stage.last_n,
                                       sequential=serve_m.sequential, embedding=stage.embedding).booster
            m = evaluator.evaluate_recs(slates(booster.predict(test[0]), test[1], test[2], users,
                                               held_out.n_users, max(ks)))
            result["label_events"][f"{n_labels}{' refit' if refit else ''}"] = {
                "metrics": m, "best_iteration": report["best_iteration"],
                "validation_ndcg@10": report["validation_ndcg@10"], "train_groups": report["train_groups"]}
            print(f"L={n_labels} refit={refit}: ndcg@10 {m['ndcg@10']:.4f} recall@20 {m['recall@20']:.4f} "
                  f"({report['best_iteration']} trees, {report['train_groups']} groups)", flush=True)
    assert first is not None and valid_m is not None
    windows, train_ms = first
    kept = {c: None for c in [int(x) for x in args.candidates.split(",")]} if args.candidates else {}
    base_c = config.merge.k
    cache: dict[int, tuple[RankingRows, RankingRows, tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
    for c in kept:
        cfg = with_candidates(config, c)
        fitted = [*zip(train_ms, [b for b, _ in windows.training], strict=True),
                  (valid_m, windows.before_validation), (serve_m, fit_data)]
        for m, d in fitted:
            m.pipeline = candidate_pipeline(cfg, m.sources, d)
        train = window_training_rows(train_ms, windows, stage, max(ks))
        valid, _ = labelled_rows(valid_m, stage, windows.validation, max(ks))
        test = serve_rows(serve_m, stage, users, max(ks))
        cache[c] = (train, valid, test)
        text, report = fit_lambdarank(train.with_positives(), valid.with_positives(), names, rounds=stage.rounds,
                                      early_stopping=stage.early_stopping, params={"seed": stage.seed, **stage.params})
        ranker = LambdaRankRanker(text, list(serve_m.sources), serve_m.stats, last_n=stage.last_n,
                                  sequential=serve_m.sequential, embedding=stage.embedding)
        feats, valid_mask, items = test
        slots = np.broadcast_to(np.arange(valid_mask.shape[1], dtype=np.float64), valid_mask.shape)
        retrieval_order = -slots[valid_mask]
        row = {"ranker": evaluator.evaluate_recs(slates(ranker.booster.predict(feats), valid_mask, items, users,
                                                        held_out.n_users, max(ks))),
               "retrieval_order": evaluator.evaluate_recs(slates(retrieval_order, valid_mask, items, users,
                                                                 held_out.n_users, max(ks))),
               "best_iteration": report["best_iteration"], "validation_ndcg@10": report["validation_ndcg@10"],
               "latency_ms_median": round(latency_ms(ranker, serve_m, users, max(ks)), 3),
               "importance_gain": report["importance_gain"]}
        result["candidates"][c] = row
        print(f"C={c}: ranker ndcg@10 {row['ranker']['ndcg@10']:.4f} recall@20 {row['ranker']['recall@20']:.4f}; "
              f"retrieval order ndcg@10 {row['retrieval_order']['ndcg@10']:.4f}; latency {row['latency_ms_median']} ms")
    if args.drop_one and base_c in cache:
        train, valid, (feats, valid_mask, items) = cache[base_c]
        for label, cols in groups(names, list(serve_m.sources)).items():
            text, _ = fit_lambdarank(blank(train, cols).with_positives(), blank(valid, cols).with_positives(), names,
                                     rounds=stage.rounds, early_stopping=stage.early_stopping,
                                     params={"seed": stage.seed, **stage.params})
            import lightgbm

            booster = lightgbm.Booster(model_str=text)
            test_feats = feats.copy()
            test_feats[:, cols] = np.nan
            m = evaluator.evaluate_recs(slates(booster.predict(test_feats), valid_mask, items, users,
                                               held_out.n_users, max(ks)))
            result["drop_one"][label] = m
            print(f"drop {label}: ndcg@10 {m['ndcg@10']:.4f} recall@20 {m['recall@20']:.4f}")
    result["wall_s"] = round(time.perf_counter() - t_start, 1)
    result["machine"] = machine_info()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=float) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
