"""Your own event logs: one file (or train/validation/test files) in a format of :mod:`read_options`, or a folder
with ``events.parquet`` and feature tables. Every choice made while reading is recorded in :class:`ReadInfo`."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from rankstack.data.dataset import Dataset
from rankstack.data.loaders.log_columns import (
    SESSION_EVENT_TYPES,
    apply_mapping,
    blank_missing,
    check_columns,
    format_mapping,
    timestamps_in,
)
from rankstack.data.loaders.read_options import SESSION_EVENTS, SPLIT_COLUMN, ReadOptions
from rankstack.data.loaders.text_formats import (
    CSV_SUFFIXES,
    JSONL_SUFFIXES,
    LINE,
    PARQUET_SUFFIXES,
    format_of,
    read_raw,
)
from rankstack.data.schema import (
    ID_COLUMNS,
    EventSchema,
    duplicates_message,
    first_repeat,
    normalise_events,
    repeated_rows,
)
from rankstack.errors import DatasetNotFoundError, DataValidationError

EVENT_FILES = ("events.parquet", "events.csv", "events.csv.gz")
_INT_ID = r"^(0|-?[1-9][0-9]{0,17})$"
LATEST_PLAUSIBLE = datetime(2100, 1, 1)


@dataclass(frozen=True)
class ReadInfo:
    """What was read and how: files, format, column mapping, event order, missing values and repeated rows."""

    files: dict[str, str]
    format: str
    file_columns: list[str]
    columns: dict[str, str]
    order: str
    time_unit: str | None
    rows: int
    missing: dict[str, dict[str, int]]
    duplicates: int
    duplicates_action: str
    split_from: str | None
    notes: list[str]

    def to_json(self) -> dict[str, Any]:
        """A plain dict (for ``--json`` output and run records)."""
        return asdict(self)


@dataclass(frozen=True)
class LoadedLog:
    """A dataset and how it was read (None for a saved dataset folder)."""

    dataset: Dataset
    info: ReadInfo | None


def is_event_log_path(path: Path) -> bool:
    """Whether ``path`` names a file type (or directory) that :func:`load_event_log` reads without a format."""
    return path.is_dir() or path.name.lower().endswith(CSV_SUFFIXES + PARQUET_SUFFIXES + JSONL_SUFFIXES)


def read_table(path: Path) -> pl.DataFrame:
    """Read a CSV/TSV (all strings: validation parses them, naming the row), Parquet or JSON-lines file by suffix."""
    path = Path(path)
    lower = path.name.lower()
    if not lower.endswith(CSV_SUFFIXES + PARQUET_SUFFIXES + JSONL_SUFFIXES):
        raise DataValidationError(
            str(path), f"unsupported file type; expected one of {list(CSV_SUFFIXES + PARQUET_SUFFIXES)}")
    return read_raw(path, format_of(path, "auto")).drop(LINE)


def _order(options: ReadOptions, fmt: str, has_time: bool, source: str) -> str:
    """``time``, ``file`` or ``none``: how events are ordered, from the option, the format and the columns."""
    if options.order == "file" and has_time:
        raise DataValidationError(
            source, "order 'file' was asked for, but the file has a timestamp column: events are ordered by it "
            "(events at the same time keep their file order); drop the order option, or leave the column out "
            "(--ignore-columns) to use the file order alone", column="timestamp")
    if options.order == "time" and not has_time:
        raise DataValidationError(
            source, "order 'time' needs a timestamp column: map one with --columns timestamp=COLUMN, or use "
            "--order file when rows are in time order")
    if options.order is not None:
        return options.order
    return "time" if has_time else "file" if fmt in ("sequences", "pairs") else "none"


def _integer_ids(frames: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """Id columns holding only canonical integers (no leading zeros) in every part become Int64; mixed: strings."""
    out = dict(frames)
    for col in ID_COLUMNS:
        dtypes = {f.schema[col] for f in out.values()}
        if dtypes == {pl.String}:
            values = pl.concat([f.get_column(col) for f in out.values()]).drop_nulls()
            if values.len() and values.str.contains(_INT_ID).all():
                out = {k: f.with_columns(pl.col(col).cast(pl.Int64)) for k, f in out.items()}
        elif len(dtypes) > 1:
            out = {k: f.with_columns(pl.col(col).cast(pl.String)) for k, f in out.items()}
    return out


def _prepare(raw: pl.DataFrame, fmt: str, options: ReadOptions, schema: EventSchema, source: str, part: str
             ) -> tuple[pl.DataFrame, dict[str, str], dict[str, dict[str, int]]]:
    """One file's raw columns → canonical names, missing cells as null, numeric times converted, split marked."""
    absent = [c for c in options.ignore if c not in raw.columns]
    if absent:
        raise DataValidationError(source, f"column(s) {absent} to leave out are not in the file; found "
                                          f"{[c for c in raw.columns if c != LINE]}")
    frame = raw.drop(list(options.ignore))
    mapping = format_mapping(fmt, options.columns, frame.columns, source)
    frame = apply_mapping(frame, mapping, source=source, schema=schema)
    if fmt == "sessions" and "event" in frame.columns:
        frame = frame.with_columns(pl.col("event").replace(SESSION_EVENT_TYPES))
    check_columns(frame, schema, source)
    if part != "all":
        if SPLIT_COLUMN in frame.columns:
            raise DataValidationError(source, f"has a '{SPLIT_COLUMN}' column, but the split is given by separate "
                                              "train/validation/test files; leave one of the two out")
        frame = frame.with_columns(pl.lit(part).alias(SPLIT_COLUMN))
    frame, missing = blank_missing(frame, source)
    return timestamps_in(frame, options.unit(fmt), source), mapping, missing


def _validate(frame: pl.DataFrame, schema: EventSchema, source: str) -> pl.DataFrame:
    """:func:`normalise_events`, with an error's row turned into the file's row/line (``_line``)."""
    lines = frame.get_column(LINE)
    try:
        return normalise_events(frame.drop(LINE), source=source, schema=schema)
    except DataValidationError as exc:
        if exc.row is None:
            raise
        where = ", ".join([source, *([f"column '{exc.column}'"] if exc.column else []), f"row {exc.row}"])
        message = str(exc).removeprefix(where + ": ")
        raise DataValidationError(source, message, column=exc.column, row=int(lines[exc.row - 1])) from None


def read_event_log(
    path: str | Path,
    options: ReadOptions | None = None,
    *,
    name: str | None = None,
    schema: EventSchema | None = None,
    strict: bool = True,
) -> LoadedLog:
    """Read a log (and its validation/test files) as ``options`` say; ``strict=False`` drops repeated rows
    instead of failing on them (``rankstack data inspect`` reports them)."""
    options = options or ReadOptions()
    path = Path(path)
    if not path.exists():
        raise DatasetNotFoundError(f"event log not found: {path}")
    if path.is_dir():
        return _read_directory(path, options, schema, name, strict)
    parts: dict[str, Path] = {"all": path}
    if options.test_file is not None:
        parts = {"train": path, **({"validation": options.validation_file} if options.validation_file else {}),
                 "test": options.test_file}
    stem = path.name.split(".")[0] or path.name
    return read_parts(parts, options, name=name or stem, schema=schema, strict=strict)


def read_parts(
    parts: dict[str, Path],
    options: ReadOptions,
    *,
    name: str,
    schema: EventSchema | None = None,
    strict: bool = True,
    item_features: pl.DataFrame | None = None,
    user_features: pl.DataFrame | None = None,
) -> LoadedLog:
    """Read one file (part ``all``) or train/validation/test files into one dataset with a ``split`` column."""
    for part, file in parts.items():
        if not Path(file).is_file():
            raise DatasetNotFoundError(f"{part} file not found: {file}")
    base = schema or EventSchema()
    events_key = options.columns.get(SESSION_EVENTS, SESSION_EVENTS)
    formats = {part: format_of(Path(file), options.format) for part, file in parts.items()}
    frames: dict[str, pl.DataFrame] = {}
    missing: dict[str, dict[str, int]] = {}
    file_columns: list[str] = []
    mapping: dict[str, str] = {}
    for part, file in parts.items():
        raw = read_raw(Path(file), formats[part], events_key=events_key)
        file_columns = file_columns or [c for c in raw.columns if c != LINE]
        frames[part], mapping, found = _prepare(raw, formats[part], options, base, str(file), part)
        for col, spelled in found.items():
            for spelling, n in spelled.items():
                missing.setdefault(col, {})[spelling] = missing.get(col, {}).get(spelling, 0) + n
    fmt = formats[next(iter(parts))]
    has_time = all("timestamp" in f.columns for f in frames.values())
    order = _order(options, fmt, has_time, str(parts[next(iter(parts))]))
    frames = _integer_ids(frames)
    split_from = "files" if "all" not in parts else "column" if SPLIT_COLUMN in frames["all"].columns else None
    context = base.context_columns + ((SPLIT_COLUMN,) if split_from and SPLIT_COLUMN not in base.context_columns
                                      else ())
    action = "drop" if "drop" in (options.duplicates, base.duplicates) else "error"
    eff = base.model_copy(update={"context_columns": context, "duplicates": action})
    valid, offset, repeats_total = [], 0, 0
    for part, frame in frames.items():
        events = _validate(frame, eff, str(parts[part]))
        # a row repeated in the file is a repeat even when its position would tell it apart; an item repeated in
        # a sequence is a second interaction
        repeats = repeated_rows(events) if fmt != "sequences" else pl.Series([False] * events.height)
        if repeats.any():
            repeats_total += int(repeats.sum())
            if action == "error" and strict:
                earlier, later = first_repeat(events, repeats)
                lines = frame.get_column(LINE)
                raise DataValidationError(str(parts[part]), duplicates_message(
                    int(lines[earlier - 1]), int(lines[later - 1])), row=int(lines[later - 1]))
            events = events.filter(~repeats)
        if order == "file":  # the position in the file (after dropped repeats) is the time, in seconds
            position = (pl.int_range(pl.len(), dtype=pl.Int64) + offset) * 1_000_000
            events = events.with_columns(position.cast(pl.Datetime("us")).alias("timestamp"))
            offset += events.height
        valid.append(events)
    events = pl.concat(valid, how="vertical")
    dataset = Dataset.from_events(events, name=name, schema=eff, validated=True,
                                  item_features=item_features, user_features=user_features)
    info = ReadInfo(
        files={part: str(file) for part, file in parts.items()}, format=fmt, file_columns=file_columns,
        columns=mapping, order=order, time_unit=options.unit(fmt) if order == "time" else None,
        rows=sum(f.height for f in frames.values()), missing=missing, duplicates=repeats_total,
        duplicates_action=action, split_from=split_from,
        notes=_notes(dataset, order, options) + _dropped_note(repeats_total, action),
    )
    return LoadedLog(dataset, info)


def _dropped_note(repeats: int, action: str) -> list[str]:
    """Say how many repeated rows were dropped (never silently)."""
    if repeats == 0 or action != "drop":
        return []
    return [f"dropped {repeats:,} repeated row(s), identical in every column to an earlier one (--duplicates "
            "error, or 'duplicates: error' in a pipeline YAML, refuses them instead)"]


def _notes(dataset: Dataset, order: str, options: ReadOptions) -> list[str]:
    """Things worth a look: timestamps that look like the wrong unit."""
    notes = []
    if order == "time" and options.time_unit is None:
        year = dataset.events.get_column("timestamp").dt.year().max()
        if isinstance(year, int) and year >= LATEST_PLAUSIBLE.year:
            notes.append(f"timestamps reach the year {year}: are they milliseconds? pass --time-unit ms "
                         "(time_unit: ms in a pipeline YAML)")
    return notes


def _read_directory(
    path: Path, options: ReadOptions, schema: EventSchema | None, name: str | None, strict: bool
) -> LoadedLog:
    """A saved Dataset (``dataset.json``), or ``events.*`` plus optional items/users Parquet tables."""
    if (path / "dataset.json").is_file():
        if not options.is_default():
            raise DataValidationError(str(path), "a saved dataset is read as saved: read options do not apply")
        return LoadedLog(Dataset.load(path), None)
    events_path = next((path / f for f in EVENT_FILES if (path / f).is_file()), None)
    if events_path is None:
        raise DatasetNotFoundError(f"{path}: directory holds none of {list(EVENT_FILES)}")
    items = pl.read_parquet(path / "items.parquet") if (path / "items.parquet").is_file() else None
    users = pl.read_parquet(path / "users.parquet") if (path / "users.parquet").is_file() else None
    return read_parts({"all": events_path}, options, name=name or path.name, schema=schema, strict=strict,
                      item_features=items, user_features=users)


def load_event_log(
    path: Path,
    *,
    columns: dict[str, str] | None = None,
    schema: EventSchema | None = None,
    name: str | None = None,
    options: ReadOptions | None = None,
) -> Dataset:
    """Load a CSV/Parquet/JSON-lines event log (or a folder with ``events.parquet``), validated; errors name the
    file. ``columns`` maps canonical names to file columns (``options.columns`` when options are given)."""
    options = options or ReadOptions()
    if columns:
        options = options.model_copy(update={"columns": {**options.columns, **columns}})
    return read_event_log(path, options, name=name, schema=schema).dataset
