"""The options that say how your own log is read, shared by ``rankstack evaluate`` and ``rankstack data inspect``."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rankstack.data.loaders.read_options import ReadOptions


class SplitKind(StrEnum):
    """``--split``: the kinds ``rankstack.data.splits.make_split`` knows."""

    leave_one_out = "leave_one_out"
    temporal = "temporal"
    random = "random"
    predefined = "predefined"


class LogFormat(StrEnum):
    """``--format``: how the file is laid out (auto: by its suffix)."""

    auto = "auto"
    csv = "csv"
    tsv = "tsv"
    parquet = "parquet"
    pairs = "pairs"
    sequences = "sequences"
    sessions = "sessions"


class LogOrder(StrEnum):
    """``--order``: time (the timestamp column) or file (row order is time order)."""

    time = "time"
    file = "file"


class TimeUnit(StrEnum):
    """``--time-unit``: what a numeric timestamp counts since 1970."""

    s = "s"
    ms = "ms"
    us = "us"
    ns = "ns"


class Duplicates(StrEnum):
    """``--duplicates``: what a row identical to an earlier one does."""

    error = "error"
    drop = "drop"


FormatOption = Annotated[LogFormat, typer.Option(
    "--format", help="Your file's layout: csv/tsv (header row), parquet, pairs (headerless 'user item [value] "
    "[timestamp]'), sequences ('user item item ...' per line), sessions (JSON lines); auto: by suffix.")]
ColumnsOption = Annotated[str | None, typer.Option(
    "--columns", help="Canonical name=your column, comma-separated: user_id=uid,item_id=iid,timestamp=ts "
    "(also value, event, split; headerless files: positions 1,2,...).", show_default=False)]
OrderOption = Annotated[LogOrder | None, typer.Option(
    "--order", help="file: rows are in time order (no timestamp needed); time: by the timestamp column "
    "(default when there is one).", show_default=False)]
TimeUnitOption = Annotated[TimeUnit | None, typer.Option(
    "--time-unit", help="Unit of numeric timestamps (default s; ms for sessions).", show_default=False)]
DuplicatesOption = Annotated[Duplicates, typer.Option(
    "--duplicates",
    help="Rows identical in every column: drop the repeats (default, with a note) or error (stop, naming them).")]
IgnoreOption = Annotated[str | None, typer.Option(
    "--ignore-columns", help="Your file's columns to leave out, comma-separated.", show_default=False)]
ValidationFileOption = Annotated[Path | None, typer.Option(
    "--validation-file", help="Validation events (same format); needs --test-file.", show_default=False)]
TestFileOption = Annotated[Path | None, typer.Option(
    "--test-file", help="Test events (same format): the dataset is then the train file, split predefined.",
    show_default=False)]


def read_options(
    fmt: LogFormat = LogFormat.auto,
    columns: str | None = None,
    order: LogOrder | None = None,
    time_unit: TimeUnit | None = None,
    duplicates: Duplicates = Duplicates.drop,
    ignore: str | None = None,
    validation_file: Path | None = None,
    test_file: Path | None = None,
) -> ReadOptions:
    """The options as :class:`ReadOptions`; a bad value is a usage error naming its option."""
    from pydantic import ValidationError

    from rankstack.data.loaders.read_options import ReadOptions, check_column_names, parse_columns

    try:
        mapping = parse_columns(columns)
        check_column_names(mapping)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--columns") from None
    try:
        return ReadOptions(
            format=fmt.value, columns=mapping, order=order.value if order else None,
            time_unit=time_unit.value if time_unit else None, duplicates=duplicates.value,
            ignore=tuple(c.strip() for c in (ignore or "").split(",") if c.strip()),
            validation_file=validation_file, test_file=test_file,
        )
    except ValidationError as exc:  # the model's consistency checks
        message = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        raise typer.BadParameter(message, param_hint="--test-file / --columns") from None
