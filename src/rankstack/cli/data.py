"""``rankstack data``: list the known datasets and where they were found; download public ones; inspect a log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rankstack.cli.backend_options import AddressOption, BackendKind, BackendOption, WorkersOption, backend_from
from rankstack.cli.common import friendly_errors
from rankstack.cli.log_options import (
    ColumnsOption,
    Duplicates,
    DuplicatesOption,
    FormatOption,
    IgnoreOption,
    LogFormat,
    OrderOption,
    SplitKind,
    TestFileOption,
    TimeUnitOption,
    ValidationFileOption,
    read_options,
)

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="List, download, inspect and prepare datasets.")

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


@app.command("inspect")
def inspect_command(
    dataset: Annotated[str, typer.Argument(help="Your log file (or folder), or a registered dataset name.")],
    fmt: FormatOption = LogFormat.auto,
    columns: ColumnsOption = None,
    order: OrderOption = None,
    time_unit: TimeUnitOption = None,
    duplicates: DuplicatesOption = Duplicates.drop,
    ignore: IgnoreOption = None,
    validation_file: ValidationFileOption = None,
    test_file: TestFileOption = None,
    split: Annotated[SplitKind | None, typer.Option(
        "--split", help="The split to try (default: the one evaluate/train would choose).", show_default=False)] = None,
    data_dir: DataDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print it all as one JSON object.")] = False,
) -> None:
    """Show what would be read from a log before any training: columns, counts, time range, repeats, the split."""
    options = read_options(fmt, columns, order, time_unit, duplicates, ignore, validation_file, test_file)
    with friendly_errors():
        from rankstack.data.loaders import REGISTRY, open_dataset
        from rankstack.data.loaders.log_summary import summarize

        loaded = open_dataset(dataset, data_dir, options, strict=False)
        summary = summarize(loaded, requested_split=split.value if split else None, spec=REGISTRY.get(dataset))
    if as_json:
        typer.echo(json.dumps(summary, default=str))
        return
    print_summary(summary, Console(highlight=False, soft_wrap=True))


@app.command("prepare")
def prepare_command(
    log: Annotated[Path, typer.Argument(help="Your event log: CSV/TSV with a header row of canonical names, or "
                                             "Parquet.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the id maps, shards and manifest.json.")],
    shards: Annotated[int, typer.Option("--shards", min=1, help="Interaction / sequence shards (by user).")] = 8,
    duplicates: DuplicatesOption = Duplicates.drop,
    backend_kind: BackendOption = BackendKind.local,
    workers: WorkersOption = None,
    address: AddressOption = None,
) -> None:
    """Validate a log, fit id maps and write interaction and sequence shards by user, with their hashes."""
    backend = backend_from(backend_kind, workers, address)
    with friendly_errors():
        from rankstack.data.schema import EventSchema

        schema = EventSchema(duplicates=duplicates.value)
        if backend.is_ray:
            from rankstack.distributed.preprocess import prepare_log_on_ray

            manifest = prepare_log_on_ray(log, out, backend, shards=shards, schema=schema)
        else:
            from rankstack.data.prepare import prepare_log

            manifest = prepare_log(log, out, shards=shards, schema=schema)
    typer.echo(json.dumps({"out": str(out), **{k: v for k, v in manifest.items() if k != "files"}}))


def _spread(values: dict[str, float]) -> str:
    """``min 1, p25 2, median 4, … mean 5.1``."""
    return ", ".join(f"{name} {value:g}" for name, value in values.items())


def print_summary(s: dict[str, Any], console: Console) -> None:
    """The inspect report for people: one line per topic, problems last."""
    read = s["read"]
    if "files" in read:
        files = ", ".join(f"{part}: {path}" if part != "all" else path for part, path in read["files"].items())
        console.print(f"[bold]{escape(s['dataset'])}[/] from {escape(files)} as [bold]{read['format']}[/]")
        mapped = {v: k for k, v in read["columns"].items()}
        shown = [f"{c} → {mapped[c]}" if c in mapped else c for c in read["file_columns"]]
        console.print(f"  file columns: {escape(', '.join(shown))}")
        for column, spelled in read["missing"].items():
            cells = ", ".join(f"{escape(repr(k)) if k else 'empty'} ×{n:,}" for k, n in spelled.items())
            console.print(f"  missing values in {escape(column)} (read as null): {cells}")
    else:
        console.print(f"[bold]{escape(s['dataset'])}[/] (registered dataset, read by its own loader)")
    console.print(f"  {s['users']:,} users, {s['items']:,} items, {s['events']:,} events (density {s['density']:.4%}); "
                  f"event types: {', '.join(f'{k} {v:,}' for k, v in s['event_types'].items())}")
    time = s["time"]
    if "first" in time:
        when = f"by timestamp, {time['first']} → {time['last']} ({time['days']:g} days)"
    elif time["order"] == "file":
        when = "file order is time order (row position as the timestamp)"
    else:
        when = f"none: {time['untimed_events']:,} events have no timestamp"
    console.print(f"  order: {when}")
    console.print(f"  events per user: {_spread(s['events_per_user'])}; {s['users_with_one_event']:,} users "
                  "with one event")
    console.print(f"  events per item: {_spread(s['events_per_item'])}; {s['items_with_one_event']:,} items "
                  "with one event")
    if "duplicates" in read:
        what = "dropped" if read["duplicates_action"] == "drop" else "an error in evaluate/train"
        console.print(f"  repeated rows: {read['duplicates']:,}" + (f" ({what})" if read["duplicates"] else ""))
    split = s["split"]
    if split["kind"] is not None:
        sizes = ", ".join(f"{k} {v:,}" for k, v in split["sizes"].items())
        console.print(f"  split: [bold]{split['kind']}[/] ({escape(split['reason'])}): {sizes}")
    for note in read.get("notes", []):
        console.print(f"  [yellow]note:[/] {escape(note)}")
    for problem in s["problems"]:
        console.print(f"  [red]problem:[/] {escape(problem)}")
