"""``rankstack models list | promote VERSION | rollback``: the local model registry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from rankstack.cli.common import console, friendly_errors

app = typer.Typer(no_args_is_help=True, help="List, promote and roll back trained pipeline versions.")

RegistryOption = Annotated[Path | None, typer.Option(
    "--registry", help="Registry folder (default ~/.rankstack/registry or $RANKSTACK_REGISTRY).")]


@app.command("list")
def list_models(
    registry: RegistryOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Every registered version, the active one marked."""
    from rankstack.experiments.versions import VersionRegistry

    with friendly_errors():
        reg = VersionRegistry(registry)
        rows = reg.listing()
    if as_json:
        typer.echo(json.dumps({"registry": str(reg.root), "versions": rows}, indent=2))
        return
    if not rows:
        console.print(f"No versions registered in {escape(str(reg.root))} (train one: rankstack train -o DIR).")
        return
    table = Table(title=f"registry {reg.root}", title_justify="left")
    table.add_column("")
    table.add_column("version", no_wrap=True)
    for col in ("recall@20", "ndcg@20"):
        table.add_column(col, justify="right")
    table.add_column("artifact", overflow="fold")
    for row in rows:
        metrics = row["metrics"]
        path = row["path"] if row["exists"] else f"{row['path']} (missing)"
        table.add_row("*" if row["active"] else "", row["version"],
                      f"{metrics['recall@20']:.4f}" if "recall@20" in metrics else "",
                      f"{metrics['ndcg@20']:.4f}" if "ndcg@20" in metrics else "", escape(path))
    console.print(table)


@app.command("promote")
def promote(
    version: Annotated[str, typer.Argument(help="The version to make active.")],
    registry: RegistryOption = None,
) -> None:
    """Make VERSION the active version (the current one can be restored with rollback)."""
    from rankstack.experiments.versions import VersionRegistry

    with friendly_errors():
        entry = VersionRegistry(registry).promote(version)
    console.print(f"active: [bold]{escape(entry.version)}[/] ({escape(entry.path)})")


@app.command("rollback")
def rollback(registry: RegistryOption = None) -> None:
    """Re-activate the previously active version."""
    from rankstack.experiments.versions import VersionRegistry

    with friendly_errors():
        entry = VersionRegistry(registry).rollback()
    console.print(f"rolled back; active: [bold]{escape(entry.version)}[/] ({escape(entry.path)})")
