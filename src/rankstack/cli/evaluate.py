"""``rankstack evaluate``: train a model on a dataset's standard split and report full-ranking metrics."""

from __future__ import annotations

import json
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from rankstack.cli.common import console, friendly_errors, metric_grid, parse_ks, parse_settings
from rankstack.data.loaders import load_dataset, standard_split
from rankstack.experiment import EvalOn, run_experiment, save_run


def metrics_table(title: str, rows: dict[str, dict[str, float]]) -> Table:
    """A Rich table: one row per model, one column per metric."""
    metrics = list(next(iter(rows.values())))
    table = Table(title=title, title_justify="left")
    table.add_column("model", style="bold")
    for metric in metrics:
        table.add_column(metric, justify="right")
    for model, values in rows.items():
        table.add_row(model, *(f"{values[m]:.4f}" for m in metrics))
    return table


def evaluate(
    dataset: Annotated[str, typer.Option("--dataset", help="Dataset name (see `rankstack data list`) or path.")],
    model: Annotated[
        str, typer.Option("--model", help="popular | itemknn | ease | lightgcn | two-tower | sasrec | multitask")
    ],
    settings: Annotated[
        list[str] | None, typer.Option("--set", help="Model setting key=value (repeatable), e.g. --set l2=80.")
    ] = None,
    k: Annotated[str, typer.Option("--k", help="Cut-offs, comma-separated.")] = "10,20",
    split: Annotated[str | None, typer.Option("--split", help="Override the standard split kind.")] = None,
    eval_on: Annotated[
        str, typer.Option("--eval-on", help="test (fit on train+validation) or validation (tune here).")
    ] = "test",
    device: Annotated[str | None, typer.Option("--device", help="cpu | cuda (default: auto).")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Where datasets live.")] = None,
    runs_dir: Annotated[Path, typer.Option("--runs-dir", help="Where runs/<id>/result.json goes.")] = Path("runs"),
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")] = False,
) -> None:
    """Train MODEL on DATASET's standard split, evaluate with exact full ranking, save runs/<id>/result.json."""
    ks = parse_ks(k)
    params = parse_settings(settings)
    if eval_on not in ("test", "validation"):
        raise typer.BadParameter("expected test or validation", param_hint="--eval-on")
    if model == "multitask":  # a ranker over logged impressions, not a candidate source
        from rankstack.cli.multitask import evaluate_multitask

        if split not in (None, "temporal"):
            raise typer.BadParameter("the multitask ranker uses a temporal split of impressions", param_hint="--split")

        with friendly_errors():
            evaluate_multitask(dataset, params=params, eval_on="test" if eval_on == "test" else "validation",
                               device=device, data_dir=data_dir, runs_dir=runs_dir, json_out=json_out)
        return
    with friendly_errors():
        t0 = time.perf_counter()
        with console.status(f"loading {dataset}", spinner="dots") if not json_out else nullcontext():
            data = load_dataset(dataset, data_dir)
        load_s = time.perf_counter() - t0
        kind = split or standard_split(dataset, data)
        eval_target: EvalOn = "test" if eval_on == "test" else "validation"
        record = run_experiment(
            data, kind, model, params, ks=ks, eval_on=eval_target, device=device, load_s=load_s
        )
        path = save_run(record, runs_dir)
    record["result_path"] = str(path)
    if json_out:
        typer.echo(json.dumps(record, default=str))
        return
    info = record["dataset"]
    console.print(
        f"[bold]{info['name']}[/]: {info['users']:,} users, {info['items']:,} items, {info['events']:,} events; "
        f"split {info['split']} {info['split_sizes']}; evaluated on {info['evaluated_on']}"
    )
    console.print(metric_grid(f"{model} on {info['name']} — full ranking", record["metrics"]))
    t = record["timings"]
    console.print(f"fit {t['fit_s']:.2f} s, evaluate {t['evaluate_s']:.2f} s, total {t['total_s']:.2f} s → {path}")
