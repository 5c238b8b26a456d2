"""SASRec (cross-entropy) on a leave-one-out split, tuned on the validation item, then the retrieve → rank funnel.

For every config of the grid: train on train ∪ validation sequences minus each user's last item and early-stop
on that last item (the validation item); the config with the best validation NDCG@10 is evaluated on the test
item once (full ranking, history excluded). Then the funnel through the runtime pipeline: merged candidates from
retrieval sources (with and without SASRec itself as a source) re-scored by SASRec as the pipeline's ranker, for
several candidate-set sizes.

Usage:
  python benchmarks/sequential.py --dataset movielens-1m [--budget-s 130] [--funnel 50,100,200,500] [--quick]
Writes benchmarks/results/sequential-<dataset>.json and sequential-<dataset>-funnel.png.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.data.dataset import Dataset
from rankstack.data.loaders import load_dataset
from rankstack.data.splits import make_split
from rankstack.evaluation.evaluator import Evaluator
from rankstack.experiments.evaluate_run import fit_and_eval_parts
from rankstack.experiments.pipeline_training import merged_recall
from rankstack.pipeline.components import build_source
from rankstack.pipeline.config import validate_pipeline_config
from rankstack.pipeline.parts import PipelineParts
from rankstack.pipeline.pipeline import Pipeline
from rankstack.provenance import code_version, machine_info
from rankstack.retrieval.merge import equal_quotas
from rankstack.retrieval.popular import MostPopular
from rankstack.retrieval.source import CandidateSource
from rankstack.sequential import SASRec, SASRecConfig

RESULTS = Path(__file__).parent / "results"
GRIDS: dict[str, list[dict[str, Any]]] = {
    "movielens-1m": [
        {"max_len": 200, "hidden_dim": 64, "heads": 1, "dropout": 0.2},
        {"max_len": 200, "hidden_dim": 128, "heads": 2, "dropout": 0.2},
        {"max_len": 200, "hidden_dim": 128, "heads": 2, "dropout": 0.2, "crop": "random"},
    ],
    "beauty": [
        {"max_len": 50, "hidden_dim": 64, "heads": 1, "dropout": 0.5, "batch_size": 256},
        {"max_len": 50, "hidden_dim": 128, "heads": 2, "dropout": 0.5, "batch_size": 256},
        {"max_len": 50, "hidden_dim": 64, "heads": 1, "dropout": 0.3, "batch_size": 256},
    ],
}
DEFAULT_GRID = [{"max_len": 50, "hidden_dim": 64, "dropout": 0.2}]
RETRIEVERS: dict[str, dict[str, Any]] = {"popular": {}, "itemknn": {}, "ease": {"l2": 500.0}}


def run_grid(dataset_name: str, fit_data: Dataset, grid: list[dict[str, Any]], base: dict[str, Any]) -> tuple[
        SASRec, list[dict[str, Any]]]:
    """Fit every config (early stopping on the validation item); return the best model and all trials."""
    trials, best, best_model = [], -1.0, None
    for params in grid:
        cfg = SASRecConfig.model_validate({**base, **params})
        model = SASRec(cfg)
        t0 = time.perf_counter()
        model.fit(fit_data)
        fit_s = time.perf_counter() - t0
        vals = [h for h in model.history_ if "val_ndcg@10" in h]
        top = max(vals, key=lambda h: h["val_ndcg@10"])
        trial = {"config": cfg.model_dump(mode="json"), "fit_s": round(fit_s, 2), "epochs_run": len(model.history_),
                 "best_epoch": model.best_epoch_, "val_ndcg@10": top["val_ndcg@10"], "val_hr@10": top["val_hr@10"],
                 "history": model.history_}
        trials.append(trial)
        print(f"[{dataset_name}] {params} → val NDCG@10 {top['val_ndcg@10']:.4f} HR@10 {top['val_hr@10']:.4f} "
              f"(epoch {model.best_epoch_}/{len(model.history_)}, {fit_s:.0f} s)", flush=True)
        if top["val_ndcg@10"] > best:
            best, best_model = top["val_ndcg@10"], model
    assert best_model is not None
    return best_model, trials


def funnel_pipeline(model: SASRec, sources: dict[str, CandidateSource], n: int, fit_data: Dataset) -> Pipeline:
    """retrieve (every source's top ``n``, equal quotas merged to ``n``) → SASRec re-scoring → top-k, greedy: the
    runtime pipeline over already fitted parts (no value blend, re-rank or exploration; no deadlines)."""
    config = validate_pipeline_config({
        "name": "sequential-funnel",
        "sources": [{"name": name, "settings": RETRIEVERS.get(name, {}), "k": n, "quota": quota}
                    for name, quota in equal_quotas(list(sources), n).items()],
        "merge": {"k": n},
        "ranker": {"source": "sasrec", "history": model.config.max_len, "state_cache": 0},
        "exploration": {"policy": "greedy"},
    }, "<sequential funnel>")
    popular = sources.get("popular")
    fallback = popular if isinstance(popular, MostPopular) else MostPopular().fit(fit_data)
    return Pipeline(PipelineParts(config=config, sources=dict(sources), fallback=fallback, user_map=fit_data.user_map,
                                  item_map=fit_data.item_map, histories=fit_data.sequences(), ranker=model))


def funnel(model: SASRec, fit_data: Dataset, test: Dataset, sizes: list[int], evaluator: Evaluator,
           batch_users: int = 4096) -> list[dict[str, Any]]:
    """NDCG@10/HR@10 and per-user stage time of the pipeline retrieve → SASRec for each candidate-set size.

    For each source mix and size, ``Pipeline.recommend_batch`` answers ``batch_users`` users at a time with the
    stages inline; retrieval_ms_per_user = the pipeline's retrieval stage (the sources' top-n, the merge,
    eligibility), ranking_ms_per_user = SASRec scoring of the merged candidates; candidate_recall = the share of
    each user's test items among the merged candidates.
    """
    t0 = time.perf_counter()
    retrievers = {name: build_source(name, params).fit(fit_data) for name, params in RETRIEVERS.items()}
    fit_retrievers_s = time.perf_counter() - t0
    users = evaluator.user_ids
    rows = []
    for names in (list(retrievers), [*retrievers, "sasrec"]):
        label = "+".join(names)
        sources: dict[str, CandidateSource] = {n: model if n == "sasrec" else retrievers[n] for n in names}
        for n in sizes:
            pipeline = funnel_pipeline(model, sources, n, fit_data)
            recs = np.full((evaluator.n_users, 10), -1, dtype=np.int64)
            stage_ms: dict[str, float] = {}
            for b in range(0, len(users), batch_users):
                chunk = users[b: b + batch_users]
                slates = pipeline.recommend_batch(chunk, 10, stage_deadlines=False)
                recs[chunk] = slates.item_ids
                for stage, ms in slates.stage_ms.items():
                    stage_ms[stage] = stage_ms.get(stage, 0.0) + ms
            pipeline.close()
            m = evaluator.evaluate_recs(recs)
            recall = merged_recall(pipeline, test, batch_users)
            rows.append({"sources": label, "n_candidates": n, "ndcg@10": m["ndcg@10"], "hr@10": m["hr@10"],
                         "candidate_recall": recall,
                         "retrieval_ms_per_user": stage_ms.get("retrieval", 0.0) / len(users),
                         "ranking_ms_per_user": stage_ms.get("ranker", 0.0) / len(users),
                         "total_ms_per_user": stage_ms.get("total", 0.0) / len(users)})
            print(f"  funnel {label} n={n}: NDCG@10 {m['ndcg@10']:.4f} HR@10 {m['hr@10']:.4f} "
                  f"cand recall {recall:.3f} (retrieval {rows[-1]['retrieval_ms_per_user']:.3f} ms/user, "
                  f"ranking {rows[-1]['ranking_ms_per_user']:.3f} ms/user)", flush=True)
    rows.append({"fit_retrievers_s": round(fit_retrievers_s, 2), "batch_users": batch_users})
    return rows


def plot(rows: list[dict[str, Any]], full: float, title: str, path: Path) -> None:
    """NDCG@10 vs candidate-set size per source mix, with the full-catalog ranker as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rankstack.plotting import save_figure

    fig, ax = plt.subplots(figsize=(6, 4))
    for label in sorted({r["sources"] for r in rows if "sources" in r}):
        pts = [(r["n_candidates"], r["ndcg@10"]) for r in rows if r.get("sources") == label]
        ax.plot(*zip(*pts, strict=True), marker="o", label=f"retrieve ({label}) → SASRec")
    ax.axhline(full, color="k", ls="--", label="SASRec over the full catalog")
    ax.axhline(0.98 * full, color="grey", ls=":", label="98% of full catalog")
    ax.set_xscale("log")
    ax.set_xlabel("candidates per user")
    ax.set_ylabel("test NDCG@10")
    ax.set_title(title)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    save_figure(fig, path)


def main() -> None:
    """Grid on validation, test once, funnel; write the record and the plot."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--budget-s", type=float, default=None, help="training time budget per config")
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--funnel", default="50,100,200,500")
    parser.add_argument("--quick", action="store_true", help="one small config, few epochs (smoke test)")
    parser.add_argument("--grid", type=json.loads, default=None, help="JSON list of configs replacing the preset grid")
    parser.add_argument("--tag", default="")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    started = time.perf_counter()
    data = load_dataset(args.dataset, args.data_dir)
    fit_data, test = fit_and_eval_parts(make_split(data, "leave_one_out"), "test")
    grid = args.grid or GRIDS.get(data.name, DEFAULT_GRID)
    base: dict[str, Any] = {"preset": "gpu", "epochs": args.epochs, "time_budget_s": args.budget_s}
    if args.quick:
        grid, base = [{"max_len": 50, "hidden_dim": 32, "dropout": 0.2}], {"epochs": 3, "eval_every": 1}
    model, trials = run_grid(data.name, fit_data, grid, base)
    evaluator = Evaluator.from_datasets(fit_data, test, ks=[10, 20])
    t0 = time.perf_counter()
    full = evaluator.evaluate(model)
    full_ms = 1e3 * (time.perf_counter() - t0) / len(evaluator.user_ids)
    chosen = model.config.model_dump(mode="json")
    print(f"[{data.name}] test (chosen on validation {chosen}): NDCG@10 {full['ndcg@10']:.4f} HR@10 "
          f"{full['hr@10']:.4f}", flush=True)
    sizes = [int(s) for s in args.funnel.split(",") if s]
    record = {"dataset": data.name, "users": data.n_users, "items": data.n_items, "events": len(data),
              "split": "leave_one_out", "chosen_config": chosen, "test": full,
              "full_catalog_ms_per_user": full_ms, "trials": trials, "funnel": [],
              "command": "python benchmarks/sequential.py --dataset " + args.dataset
              + (f" --budget-s {args.budget_s:g}" if args.budget_s else "")
              + (f" --epochs {args.epochs}" if args.epochs != 300 else "")
              + (f" --funnel {args.funnel}" if args.funnel != "50,100,200,500" else "")
              + (f" --tag {args.tag}" if args.tag else "")
              + (f" --grid '{json.dumps(args.grid)}'" if args.grid else ""),
              "machine": machine_info(), "code_version": code_version(),
              "created_at": datetime.now(UTC).isoformat(timespec="seconds")}
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"sequential-{data.name}" + ("-quick" if args.quick else "") + (f"-{args.tag}" if args.tag else "")

    def write() -> None:
        record["wall_s"] = round(time.perf_counter() - started, 1)
        (args.out / f"{stem}.json").write_text(json.dumps(record, indent=2, default=str) + "\n")

    write()  # the model figures survive even if the funnel is cut short
    if sizes:
        record["funnel"] = funnel(model, fit_data, test, sizes, evaluator)
        write()
        plot(record["funnel"], full["ndcg@10"], f"retrieve → rank on {data.name}", args.out / f"{stem}-funnel.png")
    best = max((r for r in record["funnel"] if "sources" in r), key=lambda r: r["ndcg@10"], default=None)
    print(f"DONE sequential {data.name} {stem}: test NDCG@10 {full['ndcg@10']:.4f} HR@10 {full['hr@10']:.4f}"
          + (f"; best funnel {best['sources']} n={best['n_candidates']} NDCG@10 {best['ndcg@10']:.4f}" if best else "")
          + f"; wall {time.perf_counter() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
