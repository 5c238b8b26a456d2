"""``rankstack quickstart``: the main job on the bundled ml-latest-small data."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from rankstack.cli.common import console, friendly_errors, parse_ks
from rankstack.cli.evaluate import metrics_table
from rankstack.data.dataset import Dataset
from rankstack.data.loaders import load_dataset
from rankstack.data.splits import leave_one_out
from rankstack.evaluation.report import UserExample, write_report
from rankstack.experiment import evaluate_source, fit_and_eval_parts
from rankstack.io import write_text_atomic
from rankstack.provenance import code_version, machine_info
from rankstack.retrieval.base import CandidateSource
from rankstack.retrieval.registry import build_source

BASELINES: dict[str, dict[str, Any]] = {"popular": {}, "itemknn": {"neighbors": 100}, "ease": {"l2": 200.0}}


def _titles(dataset: Dataset, item_ids: np.ndarray) -> list[str]:
    """Item titles (from item features when present, else external ids)."""
    ids = [int(i) for i in item_ids if i >= 0]
    feats = dataset.item_features
    if feats is not None and "title" in feats.columns:
        lookup = dict(zip(feats.get_column("item_id").to_list(), feats.get_column("title").to_list(), strict=True))
        return [str(lookup.get(i, dataset.item_map.to_external([i])[0])) for i in ids]
    return [str(x) for x in dataset.item_map.to_external(ids).to_list()]


def _examples(
    fit_data: Dataset, held_out: Dataset, models: dict[str, CandidateSource], users: np.ndarray
) -> list[UserExample]:
    """Top-10 lists with titles for a few users, marking their held-out item."""
    sequences = fit_data.sequences()
    truth = dict(held_out.events.select("user_id", "item_id").iter_rows())
    examples = []
    for user in users:
        lists = {}
        for name, model in models.items():
            recs = model.retrieve(np.array([user]), k=10).item_ids[0]
            titles = _titles(fit_data, recs)
            lists[name] = [(t, int(i) == truth.get(int(user))) for t, i in zip(titles, recs[recs >= 0], strict=True)]
        examples.append(
            UserExample(
                user=str(fit_data.user_map.to_external([int(user)])[0]),
                history=_titles(fit_data, sequences[user][-5:][::-1]),
                lists=lists,
            )
        )
    return examples


def quickstart(
    out: Annotated[Path, typer.Option("--out", help="Folder for the HTML report.")] = Path("reports/quickstart"),
    k: Annotated[str, typer.Option("--k", help="Cut-offs, comma-separated.")] = "10,20",
    users: Annotated[int, typer.Option("--users", help="How many users to show recommendations for.")] = 3,
    seed: Annotated[int, typer.Option("--seed", help="Picks the example users.")] = 0,
) -> None:
    """Train and compare the baselines on the bundled ml-latest-small, show recommendations, write a report."""
    ks = parse_ks(k)
    started = time.perf_counter()
    with friendly_errors():
        data = load_dataset("ml-latest-small")
        split = leave_one_out(data)
        fit_data, held_out = fit_and_eval_parts(split, "test")
        console.print(
            f"[bold]ml-latest-small[/]: {data.n_users:,} users, {data.n_items:,} movies, {len(data):,} ratings. "
            f"Leave-one-out by time: the last rating of each user is the test item, the one before it "
            f"validation (trained on here); full ranking over all movies, seen movies removed."
        )
        results: dict[str, dict[str, float]] = {}
        models: dict[str, CandidateSource] = {}
        for name, params in BASELINES.items():
            model = build_source(name, params)
            metrics, timings = evaluate_source(model, fit_data, held_out, ks)
            results[name] = metrics
            models[name] = model
            console.print(f"  {name}: fit {timings['fit_s']:.2f} s, evaluate {timings['evaluate_s']:.2f} s")
        columns = [f"{m}@{kk}" for kk in ks for m in ("recall", "ndcg", "mrr", "map", "coverage")]
        console.print(metrics_table("Baselines on ml-latest-small (test)", {n: {c: r[c] for c in columns}
                                                                           for n, r in results.items()}))
        test_users = held_out.events.get_column("user_id").unique().sort().to_numpy()
        picked = np.random.default_rng(seed).choice(test_users, size=min(users, len(test_users)), replace=False)
        examples = _examples(fit_data, held_out, models, np.sort(picked))
        for ex in examples:
            console.print(f"\n[bold]User {ex.user}[/] recently rated: {'; '.join(ex.history)}")
            for rank, (title, hit) in enumerate(ex.lists["ease"], start=1):
                console.print(f"  {rank:2d}. {title}{'  [green]← held-out movie[/]' if hit else ''}")
        machine = machine_info()
        report = write_report(
            out / "index.html",
            title="rankstack quickstart — baselines on ml-latest-small",
            results=results,
            metrics=[f"{m}@{ks[0]}" for m in ("recall", "ndcg", "hr", "mrr", "map", "coverage")],
            meta={
                "dataset": f"ml-latest-small ({data.n_users} users, {data.n_items} items, {len(data)} ratings)",
                "protocol": "leave-one-out by time, full ranking, seen items removed",
                "machine": f"{machine['cpu']} ({machine['cpu_count']} cores), torch {machine['torch']}",
                "wall time": f"{time.perf_counter() - started:.1f} s",
            },
            examples=examples,
        )
        record = {"dataset": "ml-latest-small", "split": "leave_one_out", "models": BASELINES, "metrics": results,
                   "wall_s": round(time.perf_counter() - started, 2), "machine": machine,
                   "code_version": code_version()}
        write_text_atomic(out / "results.json", json.dumps(record, indent=2) + "\n")
    console.print(f"\nReport: {report.resolve()}  (total {time.perf_counter() - started:.1f} s)")
