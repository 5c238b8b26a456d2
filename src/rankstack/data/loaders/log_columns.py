"""Your columns to canonical ones: the mapping (with each format's defaults), the checks that suggest one, cells
spelled as missing, and numeric timestamps in a given unit."""

from __future__ import annotations

import polars as pl

from rankstack.data.loaders.read_options import MISSING_SPELLINGS, SESSION_EVENTS, SPLIT_COLUMN
from rankstack.data.loaders.text_formats import LINE
from rankstack.data.schema import CANONICAL_COLUMNS, ID_COLUMNS, EventSchema
from rankstack.errors import DataValidationError

PAIRS_DEFAULT = {"user_id": "1", "item_id": "2", "value": "3", "timestamp": "4"}
SESSIONS_DEFAULT = {"user_id": "session", "item_id": "aid", "timestamp": "ts", "event": "type"}
# the OTTO sessions' event types, in the canonical vocabulary
SESSION_EVENT_TYPES = {"clicks": "click", "carts": "cart", "orders": "purchase"}
UNIT_TO_US = {"s": 1_000_000.0, "ms": 1_000.0, "us": 1.0, "ns": 0.001}
# how file columns are often named, for the hint in a "missing column" error (compared lower-case, letters only)
ALIASES = {
    "user_id": ("user", "userid", "uid", "customer", "customerid", "visitorid", "session", "sessionid", "clientid"),
    "item_id": ("item", "itemid", "iid", "product", "productid", "movieid", "aid", "articleid", "sku", "track"),
    "timestamp": ("ts", "time", "datetime", "date", "eventtime", "createdat", "unixtime", "when"),
    "value": ("rating", "score", "revenue", "amount", "watchtime"),
    "event": ("type", "eventtype", "action", "kind"),
}


def apply_mapping(
    frame: pl.DataFrame, columns: dict[str, str] | None, *, source: str, schema: EventSchema
) -> pl.DataFrame:
    """Rename file columns to canonical names using ``columns`` (canonical name → file column)."""
    if not columns:
        return frame
    known = {*CANONICAL_COLUMNS, *schema.context_columns, SPLIT_COLUMN}
    for canonical, column in columns.items():
        if canonical not in known:
            raise DataValidationError(
                source, f"column mapping key {canonical!r} is not a canonical or declared context column"
            )
        if column not in frame.columns:
            found = [c for c in frame.columns if c != LINE]
            raise DataValidationError(
                source, f"mapped column {column!r} (for {canonical!r}) not found; found {found}", column=column
            )
    renamed = {column: canonical for canonical, column in columns.items() if column != canonical}
    clash = [c for c in renamed.values() if c in frame.columns and c not in renamed]
    if clash:
        raise DataValidationError(source, f"mapping target(s) {clash} already exist in the file")
    return frame.rename(renamed)


def format_mapping(fmt: str, columns: dict[str, str], found: list[str], source: str) -> dict[str, str]:
    """The column mapping for a format: the given one over the format's defaults (a default whose name or file
    column the given mapping uses is dropped, and so is one whose column is absent)."""
    given = {k: v for k, v in columns.items() if k != SESSION_EVENTS}
    if fmt == "sequences":
        if given:
            raise DataValidationError(source, "sequences lines ('user item item ...') have no columns to map")
        return {}
    defaults = PAIRS_DEFAULT if fmt == "pairs" else SESSIONS_DEFAULT if fmt == "sessions" else {}
    used = set(given.values())
    kept = {k: v for k, v in defaults.items() if k not in given and v not in used and v in found}
    return {**kept, **given}


def _hint(missing: list[str], found: list[str]) -> str:
    """``--columns user_id=user,item_id=sku``: a mapping suggested from the file's column names, or ""."""
    by_letters = {"".join(ch for ch in col.lower() if ch.isalnum()): col for col in found}
    pairs = []
    for name in missing:
        match = next((by_letters[a] for a in (name.replace("_", ""), *ALIASES.get(name, ())) if a in by_letters), None)
        if match is not None:
            pairs.append(f"{name}={match}")
    return ",".join(pairs)


def check_columns(frame: pl.DataFrame, schema: EventSchema, source: str) -> None:
    """Raise on missing id columns or columns no canonical name takes, suggesting a mapping from their names."""
    found = [c for c in frame.columns if c != LINE]
    missing = [c for c in ID_COLUMNS if c not in found]
    if missing:
        hint = _hint(missing, found)
        how = f"map them: --columns {hint} (columns: in a pipeline YAML)" if hint else \
            "map file columns to them with --columns user_id=COLUMN,item_id=COLUMN (columns: in a pipeline YAML)"
        raise DataValidationError(source, f"missing required column(s) {missing}; found {found}: {how}")
    allowed = {*CANONICAL_COLUMNS, *schema.context_columns, SPLIT_COLUMN}
    extra = [c for c in found if c not in allowed]
    if extra:
        hint = _hint([c for c in CANONICAL_COLUMNS if c not in found], extra)
        mapped = f"map them to canonical names (--columns {hint}) or " if hint else ""
        raise DataValidationError(
            source, f"unexpected column(s) {extra}: {mapped}leave them out with --ignore-columns "
            f"{','.join(extra)} (ignore: in a pipeline YAML; in Python declare them in EventSchema.context_columns)")


def blank_missing(frame: pl.DataFrame, source: str) -> tuple[pl.DataFrame, dict[str, dict[str, int]]]:
    """Cells spelled as missing (empty, NA, N/A, NaN, null, None, any case) become null; counted per column.
    A missing user or item id is an error naming the row and how it was spelled."""
    counts: dict[str, dict[str, int]] = {}
    cleaned = []
    for col in frame.columns:
        series = frame.get_column(col)
        if col == LINE or series.dtype != pl.String:
            continue
        stripped = series.str.strip_chars()
        missing = stripped.is_null() | stripped.str.to_lowercase().is_in(list(MISSING_SPELLINGS))
        if not missing.any():
            continue
        spelled = stripped.filter(missing).fill_null("").value_counts(sort=True)
        counts[col] = {str(s): int(n) for s, n in spelled.iter_rows()}
        if col in ID_COLUMNS:
            at = int(missing.arg_true()[0])
            spelling = f": {stripped[at]!r} is read as a missing value (as are empty cells, NA, N/A, NaN, null and " \
                "None in any case)" if stripped[at] else ""
            raise DataValidationError(source, f"null or empty id{spelling}; give the event an id or drop the row",
                                      column=col, row=int(frame.get_column(LINE)[at]))
        cleaned.append(pl.when(missing).then(None).otherwise(series).alias(col))
    return (frame.with_columns(cleaned) if cleaned else frame), counts


def timestamps_in(frame: pl.DataFrame, unit: str, source: str) -> pl.DataFrame:
    """Numeric timestamps in ``unit`` turned into Datetime[us] (seconds are left to validation, which reads both)."""
    if unit == "s" or "timestamp" not in frame.columns:
        return frame
    series = frame.get_column("timestamp")
    if isinstance(series.dtype, pl.Datetime) or series.dtype == pl.Date:
        return frame
    numbers = series.str.strip_chars().cast(pl.Float64, strict=False) if series.dtype == pl.String else \
        series.cast(pl.Float64)
    bad = numbers.is_null() & series.is_not_null()
    if bad.any():
        at = int(bad.arg_true()[0])
        raise DataValidationError(source, f"expected a number of {unit} since 1970, got {series[at]!r}",
                                  column="timestamp", row=int(frame.get_column(LINE)[at]))
    micros = (numbers * UNIT_TO_US[unit]).round().cast(pl.Int64).cast(pl.Datetime("us"))
    return frame.with_columns(micros.alias("timestamp"))
