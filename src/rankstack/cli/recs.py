"""``rankstack evaluate-recs``: score a ranked recommendations file against train / test files."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from rankstack.cli.common import console, friendly_errors
from rankstack.evaluation.recs import evaluate_rec_files, parse_ks


def evaluate_recs(
    train: Path = typer.Option(..., "--train", help="Train interactions (CSV/Parquet: user_id,item_id)."),
    test: Path = typer.Option(..., "--test", help="Test interactions (CSV/Parquet: user_id,item_id)."),
    recs: Path = typer.Option(..., "--recs", help="Recommendations (user_id,item_id,rank; rank 1 = best)."),
    k: str = typer.Option("10,20", "--k", help="Comma-separated cut-offs, e.g. 10,20."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
) -> None:
    """Evaluate a recommendations file (full lists, taken as given) against held-out test interactions."""
    try:
        ks = parse_ks(k)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--k'") from exc
    with friendly_errors():  # bad files: a one-line message naming file, column and row; exit code 2
        result = evaluate_rec_files(train, test, recs, ks)
    if json_out:
        typer.echo(json.dumps(result))
        return
    _print_table(result, ks)


def _print_table(result: dict[str, float], ks: list[int]) -> None:
    """Rich table: one row per metric, one column per cut-off."""
    table = Table(title=f"{int(result['users_evaluated'])} users evaluated")
    table.add_column("metric")
    for k in ks:
        table.add_column(f"@{k}", justify="right")
    names = list(dict.fromkeys(key.split("@")[0] for key in result if "@" in key))
    for name in names:
        table.add_row(name, *(f"{result[f'{name}@{k}']:.4f}" if f"{name}@{k}" in result else "" for k in ks))
    console.print(table)
