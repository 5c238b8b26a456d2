"""Impression tables: one row per logged (request, slot) with its labels, context and joined features.

This is what a ranker trains on, as serving will see it: every shown item is a row, and shown but not
engaged items are the negatives.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import polars as pl

from rankstack.data.dataset import Dataset
from rankstack.errors import DataValidationError

KEY = ("request_id", "position", "item_id")
LABELS = ("click", "conversion", "revenue")
CONVERSION_EVENTS = ("conversion", "purchase")
RESERVED = ("request_id", "timestamp", "user_id", "item_id", "position", "propensity", *LABELS, "exposures")


def impression_table(dataset: Dataset) -> pl.DataFrame:
    """Impressions of ``dataset`` with ``click``/``conversion`` (0/1), ``revenue`` (sum of conversion values),
    ``exposures`` (earlier impressions of the same item to the same user) and the user/item feature columns.

    Feature columns whose names clash with other columns are prefixed ``user_`` / ``item_``.
    """
    ev = dataset.events
    impressions = ev.filter(pl.col("event") == "impression")
    if impressions.height == 0:
        raise DataValidationError(dataset.name, "no impression events: a ranker needs what was shown")
    for col in ("request_id", "position"):
        if impressions.get_column(col).null_count():
            raise DataValidationError(dataset.name, "every impression needs a request id and a slot", column=col)
    context = [c for c in dataset.schema.context_columns if c in ev.columns]
    clicks = (
        ev.filter(pl.col("event") == "click").select(*KEY).unique().with_columns(pl.lit(1, pl.Int8).alias("click"))
    )
    conversions = (
        ev.filter(pl.col("event").is_in(CONVERSION_EVENTS))
        .group_by(*KEY)
        .agg(pl.lit(1, pl.Int8).alias("conversion"), pl.col("value").fill_null(0.0).sum().alias("revenue"))
    )
    table = (
        impressions.select("request_id", "timestamp", "user_id", "item_id", "position", "propensity", *context)
        .join(clicks, on=list(KEY), how="left")
        .join(conversions, on=list(KEY), how="left")
        .with_columns(
            pl.col("click").fill_null(0), pl.col("conversion").fill_null(0),
            pl.col("revenue").fill_null(0.0).cast(pl.Float64),
        )
        .with_row_index("_row")
        .sort(["timestamp", "_row"], nulls_last=False)
        .with_columns(pl.int_range(pl.len()).over(["user_id", "item_id"]).cast(pl.Float64).alias("exposures"))
        .drop("_row")
    )
    taken = set(table.columns)
    for key, features, prefix in (("user_id", dataset.user_features, "user_"), ("item_id", dataset.item_features,
                                                                                  "item_")):
        if features is None:
            continue
        renames = {c: prefix + c for c in features.columns if c != key and c in taken}
        features = features.rename(renames)
        taken |= set(features.columns)
        table = table.join(features, on=key, how="left")
    return table


@dataclass(frozen=True)
class ImpressionSplit:
    """Train / validation / test impression tables cut at request timestamps."""

    train: pl.DataFrame
    validation: pl.DataFrame
    test: pl.DataFrame
    validation_start: datetime
    test_start: datetime

    def summary(self) -> dict[str, int]:
        """Rows per part."""
        return {"train": self.train.height, "validation": self.validation.height, "test": self.test.height}


def temporal_impression_split(
    table: pl.DataFrame, *, validation_start: float = 0.7, test_start: float = 0.85
) -> ImpressionSplit:
    """Global time cutoffs at quantiles of the request timestamps: train < validation_start ≤ validation
    < test_start ≤ test. A request's slots share one timestamp, so requests are never cut in two.
    """
    if not 0.0 < validation_start < test_start < 1.0:
        raise ValueError("need 0 < validation_start < test_start < 1")
    if table.get_column("timestamp").null_count():
        raise DataValidationError("impressions", "temporal split needs a timestamp on every impression",
                                  column="timestamp")
    times = table.group_by("request_id").agg(pl.col("timestamp").min()).get_column("timestamp").sort()
    cut_val, cut_test = (times[min(int(q * len(times)), len(times) - 1)] for q in (validation_start, test_start))
    ts = pl.col("timestamp")
    parts = (table.filter(ts < cut_val), table.filter((ts >= cut_val) & (ts < cut_test)), table.filter(ts >= cut_test))
    for name, part in zip(("train", "validation", "test"), parts, strict=True):
        if part.height == 0:
            raise DataValidationError("impressions", f"temporal split left the {name} part empty")
    return ImpressionSplit(*parts, validation_start=cut_val, test_start=cut_test)
