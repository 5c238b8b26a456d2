"""Seeded, reproducible train/validation/test splits that never leak the future into training.

Each split returns :class:`Split`, whose parts are :class:`Dataset` objects sharing the full dataset's
id maps, so every internal id maps back to the same external id in every part.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import numpy as np
import polars as pl

from rankstack.data.dataset import Dataset
from rankstack.data.schema import first_row
from rankstack.errors import DataValidationError

SplitKind = Literal["leave_one_out", "temporal", "random", "predefined"]
_ROW = "_row"


@dataclass(frozen=True)
class Split:
    """Train / validation / test parts of one dataset (validation may be empty)."""

    train: Dataset
    validation: Dataset
    test: Dataset
    kind: str

    def summary(self) -> dict[str, int]:
        """Event counts per part."""
        return {"train": len(self.train), "validation": len(self.validation), "test": len(self.test)}


def _parts(dataset: Dataset, train: pl.DataFrame, val: pl.DataFrame, test: pl.DataFrame, kind: str) -> Split:
    drop = [c for c in (_ROW, "_order", "_pos_rank", "_n_pos") if c in train.columns]
    if train.height == 0:
        raise DataValidationError(dataset.name, f"{kind} split left no training events")
    if test.height == 0:
        raise DataValidationError(dataset.name, f"{kind} split left no test events")
    return Split(
        train=dataset.with_events(train.drop(drop)),
        validation=dataset.with_events(val.drop(drop)),
        test=dataset.with_events(test.drop(drop)),
        kind=kind,
    )


def _require_timestamps(dataset: Dataset, kind: str) -> None:
    """Raise naming how many events have no timestamp (and the first such row): the split orders by time."""
    missing = dataset.events.get_column("timestamp").is_null()
    n_missing = int(missing.sum())
    if n_missing:
        raise DataValidationError(
            dataset.name,
            f"{kind} split needs a timestamp on every event, {n_missing:,} of {len(missing):,} event rows have "
            f"none (first at row {first_row(missing)}); give every event a time, or its position in the "
            "user's history as the timestamp (as the MovieLens-1M loader does with 'seq')",
            column="timestamp",
        )


def _positive_mask(dataset: Dataset) -> pl.Expr:
    positive = [e for e in dataset.schema.event_types if dataset.schema.weight(e) > 0]
    return pl.col("event").is_in(positive)


def leave_one_out(dataset: Dataset, *, validation: bool = True, min_events: int | None = None) -> Split:
    """Per user, in time order: last positive event → test, second-to-last → validation, earlier → train.

    Every event needs a timestamp (else :class:`DataValidationError` naming the count of rows without one).
    Events at the same time keep their row order (a stable sort), so among a user's events tied at the
    latest timestamp the one on the last row is held out. Events after a held-out event (e.g. later
    impressions) are dropped, so training never sees anything later than the user's validation/test event.
    Users with fewer than ``min_events`` positive events (default 3 with validation, 2 without) stay in
    train only.
    """
    _require_timestamps(dataset, "leave_one_out")
    held = 2 if validation else 1
    min_events = held + 1 if min_events is None else max(min_events, held + 1)
    ev = (
        dataset.events.with_row_index(_ROW)
        .sort(["user_id", "timestamp", _ROW])
        .with_columns(pl.int_range(pl.len()).over("user_id").alias("_order"))
    )
    pos = ev.filter(_positive_mask(dataset)).with_columns(
        pl.len().over("user_id").alias("_n_pos"),
        (pl.len().over("user_id") - pl.int_range(pl.len()).over("user_id") - 1).alias("_pos_rank"),
    )
    eligible = pos.filter(pl.col("_n_pos") >= min_events)
    test = eligible.filter(pl.col("_pos_rank") == 0)
    val = eligible.filter(pl.col("_pos_rank") == 1) if validation else eligible.head(0)
    first_held = eligible.filter(pl.col("_pos_rank") == held - 1).select("user_id", pl.col("_order").alias("_cut"))
    train = (
        ev.join(first_held, on="user_id", how="left")
        .filter(pl.col("_cut").is_null() | (pl.col("_order") < pl.col("_cut")))
        .drop("_cut")
        .sort(_ROW)
    )
    cols = ev.columns
    return _parts(dataset, train.select(cols), val.select(cols).sort(_ROW), test.select(cols).sort(_ROW),
                  "leave_one_out")


def _as_cutoff(dataset: Dataset, point: datetime | float) -> datetime:
    """A datetime as is, or a quantile in (0, 1) of the event timestamps."""
    if isinstance(point, datetime):
        return point
    if not 0.0 < float(point) < 1.0:
        raise ValueError(f"cutoff quantile must be in (0, 1), got {point}")
    ts = dataset.events.get_column("timestamp").sort()
    value = ts[min(int(float(point) * len(ts)), len(ts) - 1)]
    assert isinstance(value, datetime)
    return value


def temporal(
    dataset: Dataset, *, test_start: datetime | float = 0.8, validation_start: datetime | float | None = None
) -> Split:
    """Global cutoff: train = t < validation_start ≤ validation < test_start ≤ test.

    Cutoffs are datetimes or quantiles of the event timestamps (0.8 = the latest 20% is test).
    """
    _require_timestamps(dataset, "temporal")
    t_test = _as_cutoff(dataset, test_start)
    t_val = _as_cutoff(dataset, validation_start) if validation_start is not None else t_test
    if t_val > t_test:
        raise ValueError(f"validation_start {t_val} is after test_start {t_test}")
    ts = pl.col("timestamp")
    ev = dataset.events
    return _parts(
        dataset,
        ev.filter(ts < t_val),
        ev.filter((ts >= t_val) & (ts < t_test)),
        ev.filter(ts >= t_test),
        "temporal",
    )


def rolling_windows(
    dataset: Dataset, *, n_windows: int = 3, window: timedelta | None = None, horizon: float = 0.3
) -> list[Split]:
    """Backtest folds: fold i trains on everything before window i and tests on window i.

    Windows are consecutive and end at the last event; by default they cover the last ``horizon``
    share of the time range. Validation is empty (tune on an earlier fold).
    """
    _require_timestamps(dataset, "rolling")
    if n_windows < 1:
        raise ValueError("n_windows must be ≥ 1")
    ts = dataset.events.get_column("timestamp")
    t_min, t_max = ts.min(), ts.max()
    assert isinstance(t_min, datetime) and isinstance(t_max, datetime)
    size = window if window is not None else (t_max - t_min) * horizon / n_windows
    if size <= timedelta(0):
        raise ValueError("window must be positive (are all timestamps equal?)")
    end = t_max + timedelta(microseconds=1)
    folds = []
    for i in range(n_windows):
        start = end - size * (n_windows - i)
        stop = start + size
        col = pl.col("timestamp")
        train = dataset.events.filter(col < start)
        test = dataset.events.filter((col >= start) & (col < stop))
        folds.append(_parts(dataset, train, train.head(0), test, f"rolling[{i}]"))
    return folds


def random_split(
    dataset: Dataset, *, test_ratio: float = 0.2, validation_ratio: float = 0.0, seed: int = 0
) -> Split:
    """Per-user random holdout: each user with ≥ 2 events puts ⌊ratio·n⌋ (at least 1) events in test
    (and, with ≥ 3 events and a validation ratio, at least 1 in validation).

    Not temporal: use it only for data without meaningful time (like the Gowalla protocol).
    """
    if not (0 < test_ratio < 1 and 0 <= validation_ratio < 1 and test_ratio + validation_ratio < 1):
        raise ValueError("ratios must be in (0, 1) and sum below 1")
    rng = np.random.default_rng(seed)
    ev = dataset.events.with_row_index(_ROW).with_columns(pl.Series("_key", rng.random(dataset.events.height)))
    ev = ev.with_columns(
        pl.col("_key").rank("ordinal").over("user_id").cast(pl.Int64).alias("_r"),
        pl.len().over("user_id").alias("_n"),
    )
    n = pl.col("_n").cast(pl.Float64)
    n_test = pl.when(pl.col("_n") >= 2).then(pl.max_horizontal((n * test_ratio).floor(), 1)).otherwise(0)
    min_val = 1 if validation_ratio > 0 else 0
    n_val = pl.when(pl.col("_n") >= 3).then(pl.max_horizontal((n * validation_ratio).floor(), min_val)).otherwise(0)
    ev = ev.with_columns(n_test.alias("_nt"), n_val.alias("_nv"))
    r = pl.col("_r")
    test = ev.filter(r <= pl.col("_nt"))
    val = ev.filter((r > pl.col("_nt")) & (r <= pl.col("_nt") + pl.col("_nv")))
    train = ev.filter(r > pl.col("_nt") + pl.col("_nv"))
    cols = dataset.events.columns
    return _parts(dataset, train.select(cols), val.select(cols), test.select(cols), "random")


def predefined(dataset: Dataset, *, column: str = "split") -> Split:
    """Use a context column whose values are ``train`` / ``validation`` / ``test`` (e.g. the LightGCN files)."""
    if column not in dataset.events.columns:
        raise DataValidationError(dataset.name, "predefined split needs this context column", column=column)
    values = dataset.events.get_column(column)
    bad = ~values.is_in(["train", "validation", "test"])
    if bad.any():
        row = int(bad.arg_true()[0]) + 1
        raise DataValidationError(
            dataset.name, f"split value {values[row - 1]!r} is not train/validation/test", column=column, row=row
        )
    ev = dataset.events
    return _parts(
        dataset,
        ev.filter(pl.col(column) == "train"),
        ev.filter(pl.col(column) == "validation"),
        ev.filter(pl.col(column) == "test"),
        "predefined",
    )


def make_split(dataset: Dataset, kind: str, **params: object) -> Split:
    """Dispatch by name: ``leave_one_out``, ``temporal``, ``random`` or ``predefined``."""
    makers = {
        "leave_one_out": leave_one_out, "temporal": temporal, "random": random_split, "predefined": predefined,
    }
    if kind not in makers:
        raise ValueError(f"unknown split kind {kind!r}; expected one of {sorted(makers)}")
    return makers[kind](dataset, **params)  # type: ignore[operator]
