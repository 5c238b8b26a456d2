"""Generic event logs: a CSV / Parquet file, or a directory with ``events.parquet`` and feature tables."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from rankstack.data.dataset import Dataset
from rankstack.data.loaders.specs import finish
from rankstack.data.schema import CANONICAL_COLUMNS, ID_COLUMNS, EventSchema
from rankstack.errors import DatasetNotFoundError, DataValidationError

CSV_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".tsv.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")
EVENT_FILES = ("events.parquet", "events.csv", "events.csv.gz")
_INT_ID = r"^(0|-?[1-9][0-9]{0,17})$"


def is_event_log_path(path: Path) -> bool:
    """Whether ``path`` names a file type (or directory) that :func:`load_event_log` reads."""
    return path.is_dir() or path.name.lower().endswith(CSV_SUFFIXES + PARQUET_SUFFIXES)


def read_table(path: Path) -> pl.DataFrame:
    """Read by suffix: CSV/TSV all as strings (validation parses them, naming the row); Parquet as stored."""
    lower = path.name.lower()
    try:
        if lower.endswith(PARQUET_SUFFIXES):
            return pl.read_parquet(path)
        if lower.endswith(CSV_SUFFIXES):
            separator = "\t" if ".tsv" in lower else ","
            return pl.read_csv(path, separator=separator, infer_schema=False)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise DataValidationError(str(path), f"cannot read file: {str(exc).splitlines()[0]}") from exc
    raise DataValidationError(
        str(path), f"unsupported file type; expected one of {list(CSV_SUFFIXES + PARQUET_SUFFIXES)}"
    )


def apply_mapping(
    frame: pl.DataFrame, columns: dict[str, str] | None, *, source: str, schema: EventSchema
) -> pl.DataFrame:
    """Rename file columns to canonical names using ``columns`` (canonical name → file column)."""
    if not columns:
        return frame
    known = set(CANONICAL_COLUMNS) | set(schema.context_columns)
    for canonical, column in columns.items():
        if canonical not in known:
            raise DataValidationError(
                source,
                f"column mapping key {canonical!r} is not a canonical or declared context column",
            )
        if column not in frame.columns:
            raise DataValidationError(
                source,
                f"mapped column {column!r} (for {canonical!r}) not found; found {frame.columns}",
                column=column,
            )
    renamed = {column: canonical for canonical, column in columns.items() if column != canonical}
    clash = [c for c in renamed.values() if c in frame.columns and c not in renamed]
    if clash:
        raise DataValidationError(source, f"mapping target(s) {clash} already exist in the file")
    return frame.rename(renamed)


def _integer_ids(frame: pl.DataFrame) -> pl.DataFrame:
    """Turn string id columns holding only canonical integers (no leading zeros) into Int64."""
    casts = []
    for col in ID_COLUMNS:
        if col in frame.columns and frame.schema[col] == pl.String:
            values = frame.get_column(col).drop_nulls()
            if values.len() and values.str.contains(_INT_ID).all():
                casts.append(pl.col(col).cast(pl.Int64))
    return frame.with_columns(casts) if casts else frame


def _load_directory(
    path: Path, columns: dict[str, str] | None, schema: EventSchema | None, name: str | None
) -> Dataset:
    """A saved Dataset (``dataset.json``), or ``events.*`` plus optional items/users Parquet tables."""
    if (path / "dataset.json").is_file():
        return Dataset.load(path)
    events_path = next((path / f for f in EVENT_FILES if (path / f).is_file()), None)
    if events_path is None:
        raise DatasetNotFoundError(f"{path}: directory holds none of {list(EVENT_FILES)}")
    items = pl.read_parquet(path / "items.parquet") if (path / "items.parquet").is_file() else None
    users = pl.read_parquet(path / "users.parquet") if (path / "users.parquet").is_file() else None
    events = _read_events(events_path, columns, schema or EventSchema())
    return finish(
        events,
        name=name or path.name,
        source=events_path,
        schema=schema,
        item_features=items,
        user_features=users,
    )


def _read_events(path: Path, columns: dict[str, str] | None, schema: EventSchema) -> pl.DataFrame:
    """Raw events of one file, renamed to canonical columns."""
    return _integer_ids(apply_mapping(read_table(path), columns, source=str(path), schema=schema))


def load_event_log(
    path: Path,
    *,
    columns: dict[str, str] | None = None,
    schema: EventSchema | None = None,
    name: str | None = None,
) -> Dataset:
    """Load a CSV/Parquet event log (or a folder with ``events.parquet``), validated; errors name the file."""
    path = Path(path)
    if not path.exists():
        raise DatasetNotFoundError(f"event log not found: {path}")
    if path.is_dir():
        return _load_directory(path, columns, schema, name)
    events = _read_events(path, columns, schema or EventSchema())
    stem = path.name.split(".")[0] or path.name
    return finish(events, name=name or stem, source=path, schema=schema)
