"""``rankstack evaluate-recs``: score a ranked recommendations file against train / test files."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from rankstack.cli.common import console, friendly_errors, metric_grid, parse_ks


def evaluate_recs(
    train: Path = typer.Option(..., "--train", help="Train interactions (CSV/Parquet: user_id,item_id)."),
    test: Path = typer.Option(..., "--test", help="Test interactions (CSV/Parquet: user_id,item_id)."),
    recs: Path = typer.Option(..., "--recs", help="Recommendations (user_id,item_id,rank; rank 1 = best)."),
    k: str = typer.Option("10,20", "--k", help="Comma-separated cut-offs, e.g. 10,20."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
) -> None:
    """Evaluate a recommendations file (full lists, taken as given) against held-out test interactions."""
    ks = parse_ks(k)
    from rankstack.evaluation.recs import evaluate_rec_files

    with friendly_errors():  # bad files: a one-line message naming file, column and row; exit code 2
        result = evaluate_rec_files(train, test, recs, ks)
    if json_out:
        typer.echo(json.dumps(result))
        return
    title = f"{int(result['users_evaluated'])} users evaluated"
    console.print(metric_grid(title, {key: v for key, v in result.items() if "@" in key}))
