"""Open Bandit Dataset (ZOZOTOWN) small sample: logged impressions with clicks and logging propensities."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import polars as pl

from rankstack.data.dataset import Dataset
from rankstack.data.loaders.specs import DatasetSpec, Download, finish, read_bytes, require
from rankstack.data.schema import EventSchema

OBP = "https://raw.githubusercontent.com/st-tech/zr-obp/master/obd"
USER_FEATURES = tuple(f"user_feature_{i}" for i in range(4))
SCHEMA = EventSchema(context_columns=USER_FEATURES)


def _profile_ids(frame: pl.DataFrame) -> pl.Series:
    """A short stable user id per distinct user-feature profile (the log has no user ids)."""
    profile = frame.select(pl.concat_str(list(USER_FEATURES), separator="|")).to_series()
    digests = {p: "u" + hashlib.sha1(p.encode()).hexdigest()[:12] for p in profile.unique().to_list()}
    return profile.replace_strict(digests, return_dtype=pl.String).alias("user_id")


def _load(root: Path, name: str) -> Dataset:
    """One ``impression`` per row (request_id = row index, 0-based position), a ``click`` per clicked row."""
    path = require(root, ("all.csv.gz", "all.csv"))
    log = pl.read_csv(
        read_bytes(path),
        columns=[
            "timestamp",
            "item_id",
            "position",
            "click",
            "propensity_score",
            *USER_FEATURES,
        ],
    )
    impressions = log.select(
        _profile_ids(log),
        pl.col("item_id"),
        pl.col("timestamp").str.to_datetime("%Y-%m-%d %H:%M:%S%.f%z", time_unit="us"),
        pl.lit("impression").alias("event"),
        pl.lit(None, dtype=pl.Float64).alias("value"),
        pl.int_range(pl.len()).cast(pl.String).alias("request_id"),
        (pl.col("position") - 1).alias("position"),
        pl.col("propensity_score").alias("propensity"),
        *USER_FEATURES,
        pl.col("click"),
    )
    clicks = impressions.filter(pl.col("click") == 1).with_columns(pl.lit("click").alias("event"))
    events = pl.concat([impressions, clicks]).drop("click")
    items = pl.read_csv(root / "item_context.csv")
    items = items.drop(items.columns[0])
    return finish(events, name=name, source=path, schema=SCHEMA, item_features=items)


def load_open_bandit_random(root: Path) -> Dataset:
    """Uniform-random logging policy (``random/all``)."""
    return _load(root, "open-bandit")


def load_open_bandit_bts(root: Path) -> Dataset:
    """Bernoulli Thompson Sampling logging policy (``bts/all``)."""
    return _load(root, "open-bandit-bts")


def _spec(name: str, policy: str, label: str, loader: Callable[[Path], Dataset]) -> DatasetSpec:
    """The spec of one logging policy's sample."""
    return DatasetSpec(
        name=name,
        description=f"Open Bandit sample, {label} log: 10,000 impressions over 80 items, 3 slots",
        subdir=f"open_bandit_dataset/{policy}/all",
        files=(("all.csv.gz", "all.csv"), ("item_context.csv",)),
        licence="Apache-2.0 (obp package); cite Saito et al. 2020",
        default_split="temporal",
        downloads=(
            Download(f"{OBP}/{policy}/all/all.csv", target="all.csv"),
            Download(f"{OBP}/{policy}/all/item_context.csv", target="item_context.csv"),
        ),
        loader=loader,
    )


SPECS = (
    _spec("open-bandit", "random", "uniform-random", load_open_bandit_random),
    _spec("open-bandit-bts", "bts", "Bernoulli Thompson Sampling", load_open_bandit_bts),
)
