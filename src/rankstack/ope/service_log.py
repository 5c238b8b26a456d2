"""The service's own event log as an off-policy log: impressions served with propensities, feedback joined.

``rankstack serve`` stores every ``/v1/events`` event in its state store (SQLite: the ``events`` table). A client
posts one ``impression`` per shown item with the slate's ``request_id`` and the ``propensity`` the service returned
for that slot, in slot order, and later ``click`` / ``conversion`` events with the same request_id and item.
The slot of an impression is its rank among its request's impressions in arrival order.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import polars as pl

from rankstack.errors import DataValidationError

STATE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
_QUERY = "SELECT seq, user_id, item_id, event, ts, request_id, value, propensity FROM events ORDER BY seq"


def is_state_store(path: Path) -> bool:
    """Whether ``path`` names a SQLite state store file."""
    return path.suffix.lower() in STATE_SUFFIXES


def read_service_events(path: Path) -> pl.DataFrame:
    """The stored events in canonical columns (``position`` derived per request), read-only."""
    if not path.is_file():
        raise DataValidationError(str(path), "no such state store file")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = conn.execute(_QUERY).fetchall()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise DataValidationError(str(path), f"cannot read the events table: {exc}") from exc
    frame = pl.DataFrame(rows, schema={"seq": pl.Int64, "user_id": pl.String, "item_id": pl.String,
                                       "event": pl.String, "ts": pl.Float64, "request_id": pl.String,
                                       "value": pl.Float64, "propensity": pl.Float64}, orient="row")
    shown = pl.col("event") == "impression"
    return frame.with_columns(
        pl.when(shown).then(pl.col("seq").rank("ordinal").over(["request_id", shown]) - 1)
        .otherwise(None).cast(pl.Int64).alias("position"),
    ).drop("seq")
