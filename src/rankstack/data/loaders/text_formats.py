"""Readers for the shapes interaction logs come in; each returns string columns plus ``_line``, the 1-based
data row (header excluded) or text line each event came from, for error messages.

- tables: CSV/TSV with a header, or Parquet (columns as named in the file);
- ``pairs``: headerless ``user item [value] [timestamp]`` lines split on runs of spaces/tabs; columns ``1``, ``2``, …;
- ``sequences``: ``user item item …`` lines, one event per item, in line order; columns ``user_id``, ``item_id``;
- ``sessions``: JSON lines holding a list of event objects; one row per event, the session's other fields repeated.
"""

from __future__ import annotations

import io
from pathlib import Path

import polars as pl

from rankstack.data.loaders.read_options import SESSION_EVENTS
from rankstack.data.loaders.specs import read_bytes
from rankstack.errors import DataValidationError

LINE = "_line"
CSV_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".tsv.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz")
# first-line words that mean a headerless reader was given a file with a header
HEADER_WORDS = {"user", "userid", "user_id", "uid", "item", "itemid", "item_id", "iid", "rating", "timestamp",
                "session", "movieid", "productid", "time", "ts"}


def format_of(path: Path, requested: str) -> str:
    """The format to read ``path`` in: as requested, or (``auto``) by its suffix; raises naming the choices."""
    if requested != "auto":
        return requested
    lower = path.name.lower()
    if lower.endswith(CSV_SUFFIXES):
        return "tsv" if ".tsv" in lower else "csv"
    if lower.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if lower.endswith(JSONL_SUFFIXES):
        return "sessions"
    raise DataValidationError(
        str(path), "unsupported file type: cannot tell the format from the name; pass a format: csv or tsv (with a "
        "header), parquet, pairs (headerless 'user item [value] [timestamp]' lines), sequences ('user item item "
        "...' lines) or sessions (JSON lines)")


def read_raw(path: Path, fmt: str, *, events_key: str = SESSION_EVENTS) -> pl.DataFrame:
    """Read ``path`` in format ``fmt``: its columns (strings, except Parquet's own types) and ``_line``;
    ``events_key`` names the sessions' list of events."""
    try:
        if fmt == "parquet":
            frame = pl.read_parquet(path)
        elif fmt in ("csv", "tsv"):
            frame = pl.read_csv(read_bytes(path), separator="\t" if fmt == "tsv" else ",", infer_schema=False)
        elif fmt == "sessions":
            return _sessions(path, events_key)
        elif fmt == "pairs":
            return _pairs(path)
        elif fmt == "sequences":
            return _sequences(path)
        else:
            raise DataValidationError(str(path), f"unknown format {fmt!r}")
    except (pl.exceptions.PolarsError, OSError, UnicodeDecodeError) as exc:
        raise DataValidationError(str(path), f"cannot read file as {fmt}: {str(exc).splitlines()[0]}") from exc
    return frame.with_columns(pl.int_range(1, frame.height + 1, dtype=pl.Int64).alias(LINE))


def _lines(path: Path) -> pl.DataFrame:
    """Non-blank lines as token lists (split on runs of whitespace) with their 1-based line numbers."""
    text = read_bytes(path).decode("utf-8")
    lines = pl.Series("text", text.splitlines(), dtype=pl.String)
    frame = pl.DataFrame({LINE: pl.int_range(1, len(lines) + 1, dtype=pl.Int64, eager=True), "text": lines})
    tokens = pl.col("text").str.strip_chars().str.replace_all(r"\s+", " ").str.split(" ")
    frame = frame.filter(pl.col("text").str.strip_chars() != "").select(LINE, tokens.alias("tokens"))
    if frame.height == 0:
        raise DataValidationError(str(path), "no events: the file is empty")
    first = frame.get_column("tokens")[0].to_list()
    if any(token.lower() in HEADER_WORDS for token in first):
        raise DataValidationError(
            str(path), f"line {frame.get_column(LINE)[0]} looks like a header {first}; this format has none: "
            "read files with a header row as csv or tsv")
    return frame


def _pairs(path: Path) -> pl.DataFrame:
    """``user item [value] [timestamp]`` lines: every line must have as many fields as the first."""
    frame = _lines(path)
    widths = frame.get_column("tokens").list.len()
    width = int(widths[0])
    if width < 2:
        raise DataValidationError(str(path), f"line {frame.get_column(LINE)[0]}: expected at least 'user item'")
    ragged = widths != width
    if ragged.any():
        at = int(ragged.arg_true()[0])
        raise DataValidationError(
            str(path), f"line {frame.get_column(LINE)[at]} has {widths[at]} fields, the first line {width}; "
            "every line needs the same fields (user item [value] [timestamp])")
    fields = [pl.col("tokens").list.get(i).alias(str(i + 1)) for i in range(width)]
    return frame.select(*fields, LINE)


def _sequences(path: Path) -> pl.DataFrame:
    """``user item item …`` lines exploded to one row per item, in line order; lines without items are skipped."""
    frame = _lines(path)
    return (
        frame.select(pl.col("tokens").list.first().alias("user_id"), pl.col("tokens").list.slice(1).alias("item_id"),
                     LINE)
        .explode("item_id")
        .filter(pl.col("item_id").is_not_null())
        .select("user_id", "item_id", LINE)
    )


def _sessions(path: Path, key: str) -> pl.DataFrame:
    """JSON lines with a list of event objects under ``key``: one row per event, in list order."""
    frame = pl.read_ndjson(io.BytesIO(read_bytes(path)))
    if key not in frame.columns:
        raise DataValidationError(
            str(path), f"no '{key}' list of events in the JSON lines; found {frame.columns} (name the list with "
            "--columns events=FIELD)")
    events = frame.get_column(key)
    if not isinstance(events.dtype, pl.List) or not isinstance(events.dtype.inner, pl.Struct):
        raise DataValidationError(
            str(path), f"'{key}' must be a list of objects, got {events.dtype}", column=key)
    inner = [field.name for field in events.dtype.inner.fields]
    clash = [name for name in inner if name in frame.columns]
    if clash:
        raise DataValidationError(str(path), f"event field(s) {clash} repeat a session field")
    rows = (
        frame.with_row_index(LINE, offset=1).with_columns(pl.col(LINE).cast(pl.Int64))
        .explode(key).filter(pl.col(key).is_not_null()).unnest(key)
    )
    nested = [c for c, t in rows.schema.items() if t.is_nested()]
    if nested:
        raise DataValidationError(str(path), f"nested field(s) {nested} cannot be read as event columns")
    return rows.with_columns(pl.exclude(LINE).cast(pl.String))
