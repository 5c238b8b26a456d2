"""``rankstack data``: list the known datasets and where they were found; download public ones."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rankstack.cli.common import friendly_errors

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="List and download datasets.")

DataDirOption = Annotated[
    Path | None, typer.Option("--data-dir", help="Directory searched first for datasets.", show_default=False)
]
DestOption = Annotated[
    Path | None,
    typer.Option(
        "--dest",
        help="Data directory to download into.",
        show_default="$RANKSTACK_DATA or ~/.cache/rankstack/data",
    ),
]
ForceOption = Annotated[bool, typer.Option("--force", help="Download again even if the files are present.")]


@app.command("list")
def list_command(data_dir: DataDirOption = None) -> None:
    """Show every registered dataset, where it was found (or "missing"), its default split and licence."""
    from rankstack.data.loaders import list_datasets

    with friendly_errors():
        rows = list_datasets(data_dir)
    console = Console()
    if data_dir is not None and not data_dir.is_dir():
        Console(stderr=True).print(f"[yellow]warning:[/] --data-dir {escape(str(data_dir))} does not exist")
    table = Table(title="rankstack datasets")
    table.add_column("name", no_wrap=True, style="bold")
    table.add_column("description")
    table.add_column("found at", overflow="fold")
    table.add_column("split", no_wrap=True)
    table.add_column("licence")
    for spec, path in rows:
        where = escape(str(path)) if path is not None else "[yellow]missing[/]"
        table.add_row(spec.name, escape(spec.description), where, spec.default_split, escape(spec.licence))
    console.print(table)


@app.command("download")
def download_command(
    name: Annotated[str, typer.Argument(help="Registered dataset name (see `rankstack data list`).")],
    dest: DestOption = None,
    force: ForceOption = False,
) -> None:
    """Fetch a public dataset into the layout the loaders read; prints its licence terms first."""
    from rankstack.data.loaders import default_download_dir, download_dataset, get_spec

    console = Console()
    with friendly_errors():
        spec = get_spec(name)
        console.print(f"{spec.name}: licence — {escape(spec.licence)}", highlight=False)
        root = download_dataset(name, dest or default_download_dir(), force=force)
    console.print(f"{spec.name} ready at {escape(str(root))}", highlight=False, soft_wrap=True)
