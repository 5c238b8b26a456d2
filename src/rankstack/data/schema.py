"""The canonical interaction-event schema and its validation.

Every loader produces a Polars frame with these columns, in this order:

| column       | dtype          | meaning                                                            |
|--------------|----------------|--------------------------------------------------------------------|
| user_id      | any (str/int)  | external user id (required, non-empty)                             |
| item_id      | any (str/int)  | external item id (required, non-empty)                             |
| timestamp    | Datetime[us]   | when it happened; numbers are epoch seconds; null when unknown     |
| event        | String         | one of ``EventSchema.event_types``                                 |
| value        | Float64        | rating, revenue or watch time; null when absent                    |
| request_id   | String         | the request (slate) the event belongs to                           |
| position     | Int64          | slot in the slate, ≥ 0                                             |
| propensity   | Float64        | logging policy's probability of the shown item, in (0, 1]          |
| <context...> | any            | declared context columns (device, placement, split marker, …)      |
"""

from __future__ import annotations

from typing import Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from rankstack.errors import DataValidationError

ID_COLUMNS = ("user_id", "item_id")
OPTIONAL_COLUMNS: dict[str, pl.DataType] = {
    "timestamp": pl.Datetime("us"),
    "event": pl.String(),
    "value": pl.Float64(),
    "request_id": pl.String(),
    "position": pl.Int64(),
    "propensity": pl.Float64(),
}
CANONICAL_COLUMNS = (*ID_COLUMNS, *OPTIONAL_COLUMNS)
DEFAULT_EVENT_TYPES = (
    "impression", "click", "conversion", "purchase", "rating", "view", "cart", "interaction",
)


class EventSchema(BaseModel):
    """Which event types exist, how they weigh in interaction matrices, and which context columns to keep."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_types: tuple[str, ...] = DEFAULT_EVENT_TYPES
    default_event: str = "interaction"
    event_weights: dict[str, float] = Field(default_factory=lambda: {"impression": 0.0})
    context_columns: tuple[str, ...] = ()
    duplicates: Literal["error", "drop"] = "error"

    def weight(self, event: str) -> float:
        """Weight of one event type in the interaction matrix (1.0 unless configured)."""
        return self.event_weights.get(event, 1.0)


def first_row(mask: pl.Series) -> int:
    """1-based data row (header excluded) of the first True in ``mask``."""
    return int(mask.arg_true()[0]) + 1


def check_ids(df: pl.DataFrame, source: str, columns: tuple[str, ...] = ID_COLUMNS) -> None:
    """Raise naming the first row whose id in ``columns`` is null or an empty string."""
    for col in columns:
        series = df.get_column(col)
        bad = series.is_null()
        if series.dtype == pl.String:
            bad = bad | (series.str.strip_chars() == "")
        if bad.any():
            raise DataValidationError(source, "null or empty id", column=col, row=first_row(bad))


def _parse_timestamp(series: pl.Series, source: str) -> pl.Series:
    """Normalise a timestamp column to Datetime[us]; numbers are epoch seconds."""
    dtype = series.dtype
    if dtype == pl.Null:
        return series.cast(pl.Datetime("us"))
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is not None:
            series = series.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        return series.cast(pl.Datetime("us"))
    if dtype == pl.Date:
        return series.cast(pl.Datetime("us"))
    if dtype.is_numeric():
        floats = series.cast(pl.Float64)
        bad = floats.is_nan() | floats.is_infinite()
        if bad.any():
            raise DataValidationError(
                source, "unparsable timestamp: expected epoch seconds, got NaN/inf",
                column="timestamp", row=first_row(bad.fill_null(False)),
            )
        return (floats * 1_000_000).round().cast(pl.Int64).cast(pl.Datetime("us"))
    if dtype == pl.String:
        stripped = series.str.strip_chars()
        numeric = stripped.cast(pl.Float64, strict=False)
        from_numbers = (numeric * 1_000_000).round().cast(pl.Int64).cast(pl.Datetime("us"))
        if numeric.null_count() == stripped.null_count():  # all numbers: date parsing (slow) has nothing to do
            result = from_numbers
        else:
            parsed = stripped.str.to_datetime(time_unit="us", strict=False, time_zone="UTC")
            result = parsed.dt.replace_time_zone(None).fill_null(from_numbers)
        bad = result.is_null() & series.is_not_null() & (stripped != "")
        if bad.any():
            row = first_row(bad)
            raise DataValidationError(
                source,
                f"unparsable timestamp {series[row - 1]!r}: expected ISO-8601 date-time or epoch seconds",
                column="timestamp", row=row,
            )
        return result
    raise DataValidationError(source, f"unsupported timestamp dtype {dtype}", column="timestamp")


def _check_numeric(df: pl.DataFrame, column: str, dtype: pl.DataType, source: str) -> pl.Series:
    series = df.get_column(column)
    if series.dtype == pl.String:
        series = series.str.strip_chars().replace("", None)
    cast = series.cast(dtype, strict=False)
    bad = cast.is_null() & series.is_not_null()
    if bad.any():
        row = first_row(bad)
        raise DataValidationError(
            source, f"expected a number, got {series[row - 1]!r}", column=column, row=row
        )
    return cast


def validate_events(
    df: pl.DataFrame, *, source: str, schema: EventSchema | None = None
) -> pl.DataFrame:
    """Check ``df`` against the canonical schema and return it normalised (columns, dtypes, order), repeated rows
    dropped or rejected as ``schema.duplicates`` says.

    Raises :class:`DataValidationError` naming ``source``, the column and the 1-based data row.
    """
    schema = schema or EventSchema()
    out = normalise_events(df, source=source, schema=schema)
    repeats = repeated_rows(out)
    if repeats.any():
        if schema.duplicates == "drop":
            return out.filter(~repeats)
        earlier, later = first_repeat(out, repeats)
        raise DataValidationError(source, duplicates_message(earlier, later), row=later)
    return out


def duplicates_message(earlier: int, later: int) -> str:
    """The error for a row identical to an earlier one, with every way to drop such rows."""
    return (f"duplicate events: row {later} repeats row {earlier} in every column (drop repeats with "
            "--duplicates drop, 'duplicates: drop' under data: in a pipeline YAML, or EventSchema.duplicates='drop')")


def repeated_rows(df: pl.DataFrame) -> pl.Series:
    """True on each row identical in every column to an earlier row."""
    return ~df.select(pl.struct(pl.all()).is_first_distinct()).to_series()


def normalise_events(df: pl.DataFrame, *, source: str, schema: EventSchema) -> pl.DataFrame:
    """:func:`validate_events` without the duplicate check: canonical columns, dtypes and order, ids checked."""
    missing = [c for c in ID_COLUMNS if c not in df.columns]
    if missing:
        raise DataValidationError(
            source, f"missing required column(s) {missing}; found {df.columns}"
        )
    allowed = set(CANONICAL_COLUMNS) | set(schema.context_columns)
    extra = [c for c in df.columns if c not in allowed]
    if extra:
        raise DataValidationError(
            source,
            f"unexpected column(s) {extra}: declare them in EventSchema.context_columns or drop them",
        )
    absent_context = [c for c in schema.context_columns if c not in df.columns]
    if absent_context:
        raise DataValidationError(source, f"declared context column(s) {absent_context} are missing")
    if df.height == 0:
        raise DataValidationError(source, "no events: the data is empty")
    check_ids(df, source)

    columns: dict[str, pl.Series] = {c: df.get_column(c) for c in ID_COLUMNS}
    n = df.height
    columns["timestamp"] = (
        _parse_timestamp(df.get_column("timestamp"), source)
        if "timestamp" in df.columns
        else pl.Series("timestamp", [None] * n, dtype=pl.Datetime("us"))
    )
    if "event" in df.columns:
        event = df.get_column("event").cast(pl.String).fill_null(schema.default_event)
        unknown = ~event.is_in(list(schema.event_types))
        if unknown.any():
            row = first_row(unknown)
            raise DataValidationError(
                source,
                f"unknown event type {event[row - 1]!r}; expected one of {list(schema.event_types)}",
                column="event", row=row,
            )
        columns["event"] = event
    else:
        columns["event"] = pl.Series("event", [schema.default_event] * n, dtype=pl.String)
    for col in ("value", "position", "propensity"):
        dtype = OPTIONAL_COLUMNS[col]
        columns[col] = (
            _check_numeric(df, col, dtype, source) if col in df.columns
            else pl.Series(col, [None] * n, dtype=dtype)
        )
    columns["request_id"] = (
        df.get_column("request_id").cast(pl.String) if "request_id" in df.columns
        else pl.Series("request_id", [None] * n, dtype=pl.String)
    )
    prop = columns["propensity"]
    bad = ((prop <= 0) | (prop > 1) | prop.is_nan()).fill_null(False)
    if bad.any():
        row = first_row(bad)
        raise DataValidationError(
            source, f"propensity must be in (0, 1], got {prop[row - 1]}", column="propensity", row=row
        )
    bad = (columns["position"] < 0).fill_null(False)
    if bad.any():
        row = first_row(bad)
        raise DataValidationError(source, "position must be ≥ 0", column="position", row=row)

    out = pl.DataFrame([columns[c].rename(c) for c in CANONICAL_COLUMNS])
    for col in schema.context_columns:
        out = out.with_columns(df.get_column(col))
    return out


def first_repeat(df: pl.DataFrame, repeats: pl.Series) -> tuple[int, int]:
    """1-based (earlier, later) rows of the first row identical to an earlier one (``repeats``: not first distinct)."""
    later = int(repeats.arg_true()[0])
    hashes = df.hash_rows()
    return int((hashes == hashes[later]).arg_true()[0]) + 1, later + 1
