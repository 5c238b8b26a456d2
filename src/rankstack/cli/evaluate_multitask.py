"""``rankstack evaluate --model multitask``: the multi-task ranker on a logged dataset (impressions → clicks …)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import polars as pl
import typer
from rich.markup import escape
from rich.table import Table

from rankstack.cli.common import console, err_console, print_training
from rankstack.data.loaders import load_dataset
from rankstack.experiments.evaluate_run import save_run, save_run_report
from rankstack.experiments.multitask_run import run_multitask_experiment
from rankstack.simulation.log import TRUTH_FILE, load_simulation_config
from rankstack.simulation.simulator import MarketplaceSimulator

if TYPE_CHECKING:
    from rankstack.data.loaders import ReadOptions


def evaluate_multitask(
    dataset: str, *, params: dict[str, Any], eval_on: Literal["validation", "test"], device: str | None,
    data_dir: Path | None, runs_dir: Path, json_out: bool, options: ReadOptions | None = None,
) -> None:
    """Load, run the experiment, save ``runs/<id>/result.json`` and print a table or the JSON record."""
    t0 = time.perf_counter()
    data = load_dataset(dataset, data_dir, options)
    folder = Path(dataset)
    truth = pl.read_parquet(folder / TRUTH_FILE) if (folder / TRUTH_FILE).is_file() else None
    sim_config = load_simulation_config(folder) if folder.is_dir() else None
    simulator = MarketplaceSimulator(sim_config) if sim_config is not None else None
    if device is not None:
        params = {"device": device, **params}
    record = run_multitask_experiment(data, params, eval_on=eval_on, truth=truth, simulator=simulator,
                                      load_s=time.perf_counter() - t0)
    path = save_run(record, runs_dir)
    record["result_path"] = str(path)
    record["report_path"] = str(save_run_report(record, path.with_name("report.html")))
    if json_out:
        typer.echo(json.dumps(record, default=str))
        if (record.get("training") or {}).get("warning"):
            err_console.print(f"[yellow]warning:[/] {escape(record['training']['warning'])}")
        return
    info, metrics = record["dataset"], record["metrics"]
    console.print(f"[bold]{info['name']}[/]: {info['impressions']:,} impressions; temporal split "
                  f"{info['split_sizes']}; evaluated on {info['evaluated_on']}")
    table = Table(title="multitask ranker", title_justify="left")
    for col in ("objective", "auc", "oracle auc", "log-loss", "oracle log-loss", "ece", "ece raw"):
        table.add_column(col, justify="right" if col != "objective" else "left")
    for head in ("click", "conversion"):
        if f"auc_{head}" in metrics:
            cells = [metrics.get(k) for k in (f"auc_{head}", f"oracle_auc_{head}", f"log_loss_{head}",
                                              f"oracle_log_loss_{head}", f"ece_{head}", f"ece_{head}_raw")]
            table.add_row(head, *("" if v is None else f"{v:.4f}" for v in cells))
    console.print(table)
    for name in ("value_ranked", "click_ranked", "oracle_value_ranked", "random"):
        if f"{name}_revenue_per_mille" in metrics:
            console.print(f"{name}: revenue/1000 impressions {metrics[f'{name}_revenue_per_mille']:.2f}, "
                          f"clicks/1000 {metrics[f'{name}_clicks_per_mille']:.1f}")
    print_training(record.get("training"), "multitask")
    t = record["timings"]
    console.print(f"fit {t['fit_s']:.1f} s, evaluate {t['evaluate_s']:.1f} s, total {t['total_s']:.1f} s → "
                  f"{record['result_path']}, {record['report_path']}")
