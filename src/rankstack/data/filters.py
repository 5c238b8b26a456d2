"""Row filters applied to event frames before id mapping (minimum-count filters as in SASRec/BERT4Rec)."""

from __future__ import annotations

import polars as pl

from rankstack.errors import DataValidationError


def filter_min_count(events: pl.DataFrame, *, column: str, min_count: int, source: str) -> pl.DataFrame:
    """Keep rows whose ``column`` value occurs in at least ``min_count`` rows (one pass, not a k-core).

    Raises :class:`DataValidationError` naming ``source`` and ``column`` when no row is left.
    """
    if column not in events.columns:
        raise DataValidationError(
            source, f"cannot filter on missing column; found {events.columns}", column=column
        )
    if min_count <= 1:
        return events
    kept = events.filter(pl.len().over(column) >= min_count)
    if kept.height == 0:
        raise DataValidationError(
            source,
            f"no events left after filtering: no {column} value occurs in ≥ {min_count} "
            f"of {events.height} rows",
            column=column,
        )
    return kept
