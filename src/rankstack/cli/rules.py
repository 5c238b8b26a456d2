"""``rankstack check-rules FILE``: validate a re-rank YAML file (and compile it against a dataset's items)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from rankstack.cli.common import console, friendly_errors


def _summary(rule: object) -> str:
    fields = rule.model_dump(exclude={"name", "type"}, exclude_none=True)  # type: ignore[attr-defined]
    return ", ".join(f"{k}={v}" for k, v in fields.items())


def check_rules(
    path: Annotated[Path, typer.Argument(help="Re-rank YAML file (diversity + rules).")],
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="Also compile against this dataset's item attributes.")
    ] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Directory searched first for datasets.")] = None,
) -> None:
    """Validate a rules file; with --dataset, check its attributes exist in the item catalog too."""
    from rankstack.reranking.rerank_pipeline import RerankPipeline, load_rerank_config

    with friendly_errors():
        config = load_rerank_config(path)
        if dataset is not None:
            from rankstack.data.loaders import load_dataset
            from rankstack.reranking.catalog import ItemCatalog

            RerankPipeline(config, ItemCatalog.from_dataset(load_dataset(dataset, data_dir)), source=str(path))
    table = Table(title=f"{escape(str(path))}: valid", title_justify="left")
    for column in ("#", "name", "type", "settings"):
        table.add_column(column, overflow="fold")
    if config.diversity is not None:
        table.add_row("-", "diversity", config.diversity.method, escape(_summary(config.diversity)))
    for index, rule in enumerate(config.rules):
        table.add_row(str(index), escape(rule.name), rule.type, escape(_summary(rule)))
    console.print(table)
