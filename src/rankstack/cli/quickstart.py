"""``rankstack quickstart``: train the default multi-stage pipeline on the bundled ml-latest-small, evaluate it
next to the single-model baselines, write the artifact and an HTML report; serves nothing."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import typer
from rich.markup import escape

from rankstack.cli.common import artifact_size, console, friendly_errors
from rankstack.cli.evaluate import metrics_table

if TYPE_CHECKING:
    from rankstack.data.dataset import Dataset
    from rankstack.evaluation.fit_summary import FitSummary
    from rankstack.evaluation.report import UserExample
    from rankstack.pipeline.pipeline import Pipeline

BASELINES: dict[str, dict[str, Any]] = {"popular": {}, "itemknn": {"neighbors": 100}, "ease": {"l2": 200.0}}
PIPELINE_ROW = "pipeline"


def _titles(dataset: Dataset, item_ids: np.ndarray) -> list[str]:
    """Item titles (from item features when present, else external ids)."""
    ids = [int(i) for i in item_ids if i >= 0]
    feats = dataset.item_features
    if feats is not None and "title" in feats.columns:
        lookup = dict(zip(feats.get_column("item_id").to_list(), feats.get_column("title").to_list(), strict=True))
        return [str(lookup.get(i, dataset.item_map.to_external([i])[0])) for i in ids]
    return [str(x) for x in dataset.item_map.to_external(ids).to_list()]


def _examples(pipeline: Pipeline, fit_data: Dataset, held_out: Dataset, users: np.ndarray,
              baseline: Any) -> list[UserExample]:
    """Top-10 lists with titles for a few users (the pipeline's slate and a baseline's), marking held-out items."""
    from rankstack.evaluation.report import UserExample
    from rankstack.pipeline.api import RecommendRequest

    sequences = fit_data.sequences()
    truth = dict(held_out.events.select("user_id", "item_id").iter_rows())
    external = [str(u) for u in fit_data.user_map.to_external(users).to_list()]
    responses = pipeline.recommend([RecommendRequest(user_id=u, k=10, request_id=f"quickstart-{u}")
                                    for u in external], stage_deadlines=False)  # offline: no serving budgets
    examples = []
    for user, name, response in zip(users, external, responses, strict=True):
        slate = fit_data.item_map.to_internal([i.item_id for i in response.items], strict=False)
        lists = {PIPELINE_ROW: slate, "ease": baseline.retrieve(np.array([user]), k=10).item_ids[0]}
        examples.append(UserExample(
            user=name, history=_titles(fit_data, sequences[user][-5:][::-1]),
            lists={label: [(t, int(i) == truth.get(int(user)))
                           for t, i in zip(_titles(fit_data, ids), ids[ids >= 0], strict=True)]
                   for label, ids in lists.items()},
        ))
    return examples


def _training(pipeline: Pipeline, baselines: dict[str, Any]) -> dict[str, FitSummary]:
    """How each fitted model's training went: the pipeline's sources, its ranker's model, the baselines."""
    models: dict[str, Any] = {**pipeline.parts.sources, **baselines}
    source = getattr(pipeline.parts.ranker, "source", None)  # a sequential ranker wraps a fitted source
    if source is not None:
        models[f"ranker ({source.name})"] = source
    summaries = {name: model.fit_summary() for name, model in models.items() if hasattr(model, "fit_summary")}
    return {name: summary for name, summary in summaries.items() if summary is not None}


def quickstart(
    out: Annotated[Path, typer.Option("--out", help="Folder for the HTML report.")] = Path("reports/quickstart"),
    artifact: Annotated[Path, typer.Option("--artifact", help="Where to write the trained pipeline.")] = Path(
        "artifacts/quickstart"),
    config: Annotated[Path | None, typer.Option("--config", help="Pipeline YAML (default: the default pipeline).")
                      ] = None,
    users: Annotated[int, typer.Option("--users", help="How many users to show recommendations for.", min=0)] = 3,
    seed: Annotated[int, typer.Option("--seed", help="Picks the example users.")] = 0,
) -> None:
    """Train the default pipeline on the bundled ml-latest-small, compare it with the baselines, write a report."""
    started = time.perf_counter()
    with friendly_errors():
        from rankstack.evaluation.evaluator import Evaluator
        from rankstack.evaluation.report import write_report
        from rankstack.experiments.pipeline_training import train_pipeline
        from rankstack.io import write_text_atomic
        from rankstack.pipeline.artifact import save_artifact
        from rankstack.pipeline.components import build_source
        from rankstack.pipeline.config import load_pipeline_config

        cfg = load_pipeline_config(config)
        result = train_pipeline(cfg, log=lambda msg: console.print(escape(msg)))
        fit_data, held_out, manifest = result.fit_data, result.held_out, result.manifest
        ks = cfg.evaluation.ks
        metrics = manifest["metrics"]
        results: dict[str, dict[str, float]] = dict(metrics["sources"])
        evaluator = Evaluator.from_datasets(fit_data, held_out, ks=ks)
        fitted: dict[str, Any] = {}
        for name, params in BASELINES.items():
            if name not in results:
                t0 = time.perf_counter()
                fitted[name] = build_source(name, params).fit(fit_data)
                results[name] = evaluator.evaluate(fitted[name])
                console.print(f"  baseline {name}: fit + evaluate {time.perf_counter() - t0:.1f} s")
        results[PIPELINE_ROW] = metrics["pipeline"]
        columns = [*(f"{m}@{k}" for k in ks for m in ("recall", "ndcg")), f"coverage@{ks[-1]}"]
        console.print(metrics_table(f"{cfg.data.name} ({manifest['data']['eval_on']}): each source alone vs the "
                                    f"whole pipeline's final slate", {n: {c: r[c] for c in columns}
                                                                      for n, r in results.items()}))
        test_users = held_out.events.get_column("user_id").unique().sort().to_numpy()
        picked = np.sort(np.random.default_rng(seed).choice(test_users, size=min(users, len(test_users)),
                                                            replace=False))
        baseline = fitted.get("ease") or result.pipeline.parts.sources.get("ease")
        examples = _examples(result.pipeline, fit_data, held_out, picked, baseline) if baseline is not None else []
        for ex in examples:
            console.print(f"\n[bold]User {escape(ex.user)}[/] recently rated: {escape('; '.join(ex.history))}")
            for rank, (title, hit) in enumerate(ex.lists[PIPELINE_ROW], start=1):
                console.print(f"  {rank:2d}. {escape(title)}{'  [green]← held-out movie[/]' if hit else ''}")
        save_artifact(result.pipeline.parts, manifest, artifact, overwrite=True)
        result.pipeline.close()
        machine = manifest["machine"]
        wall = time.perf_counter() - started
        data = manifest["data"]
        report = write_report(
            out / "index.html",
            title=f"rankstack quickstart — the {cfg.name} pipeline on {data['name']}",
            results=results,
            metrics=[f"{m}@{ks[0]}" for m in ("recall", "ndcg", "hr", "mrr", "map", "coverage")],
            meta={
                "dataset": f"{data['name']} ({data['users']} users, {data['items']} items, {data['events']} events)",
                "protocol": f"{data['split']}, full ranking, seen items removed; '{PIPELINE_ROW}' is the final "
                            f"slate from recommend() (stages: {', '.join(manifest['stages'])})",
                "artifact": f"{artifact} (version {manifest['version']})",
                "machine": f"{machine['cpu']} ({machine['cpu_count']} cores), torch {machine['torch']}",
                "wall time": f"{wall:.1f} s",
            },
            examples=examples,
            training=_training(result.pipeline, fitted),
        )
        record = {"dataset": data["name"], "split": data["split"], "pipeline": cfg.model_dump(mode="json"),
                  "baselines": BASELINES, "metrics": results, "funnel": metrics["funnel"],
                  "version": manifest["version"], "artifact": str(artifact), "wall_s": round(wall, 2),
                  "machine": machine, "code_version": manifest["code_version"]}
        write_text_atomic(out / "results.json", json.dumps(record, indent=2) + "\n")
    console.print(f"\nReport: {escape(str(report.resolve()))}  (total {time.perf_counter() - started:.1f} s)")
    console.print(f"Artifact {escape(str(artifact))}: {escape(artifact_size(artifact))} — docs/pipeline.md, "
                  "'What takes the space'")
    console.print(f"Next: [bold]rankstack serve {escape(str(artifact))}[/]")
