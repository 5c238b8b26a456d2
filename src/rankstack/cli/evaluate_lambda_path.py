"""``rankstack evaluate --model ease --eval-on validation --set l2=100,200,500``: EASE's λ path on validation."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from rankstack.cli.common import console
from rankstack.data.loaders import open_dataset, standard_split
from rankstack.data.loaders.read_options import ReadOptions
from rankstack.experiments.evaluate_run import save_run
from rankstack.experiments.lambda_path import run_lambda_path


def evaluate_lambda_path(
    dataset: str, *, l2s: list[float], params: dict[str, Any], split: str | None, ks: list[int],
    device: str | None, data_dir: Path | None, runs_dir: Path, json_out: bool, options: ReadOptions | None = None,
) -> None:
    """Load, fit and evaluate every λ on validation, save ``runs/<id>/result.json``; print a table or the JSON."""
    t0 = time.perf_counter()
    loaded = open_dataset(dataset, data_dir, options)
    choice = standard_split(dataset, loaded.dataset, loaded.info, requested=split)
    read = {"read": loaded.info.to_json()} if loaded.info is not None else {}
    record = run_lambda_path(loaded.dataset, choice.kind, params, l2s, ks=ks, device=device,
                             load_s=time.perf_counter() - t0, about_data={"split_reason": choice.reason, **read})
    record["result_path"] = str(save_run(record, runs_dir))
    if json_out:
        typer.echo(json.dumps(record, default=str))
        return
    info, best = record["dataset"], record["best"]
    console.print(f"[bold]{info['name']}[/]: {info['users']:,} users, {info['items']:,} items; split {info['split']}; "
                  f"fitted on train, evaluated on {info['held_out']['what']} ({info['held_out']['events']:,} events)")
    metrics = list(record["lambda_path"][0]["metrics"])
    shown = [m for m in metrics if m.partition("@")[0] in ("recall", "ndcg")]
    table = Table(title=f"EASE λ path — chosen by {best['selected_by']} on validation", title_justify="left")
    for col in ("λ", *shown, "fit s", "eval s"):
        table.add_column(col, justify="right")
    for step in record["lambda_path"]:
        mark = " *" if step["l2"] == best["l2"] else ""
        table.add_row(f"{step['l2']:g}{mark}", *(f"{step['metrics'][m]:.4f}" for m in shown),
                      f"{step['fit_s']:.1f}", f"{step['evaluate_s']:.1f}")
    console.print(table)
    console.print(f"* best λ = {best['l2']:g} ({best['selected_by']} {best['value']:.4f}); report it on test once with "
                  f"`rankstack evaluate --dataset {dataset} --model ease --set l2={best['l2']:g}` → "
                  f"{record['result_path']}")
