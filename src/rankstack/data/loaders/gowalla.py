"""Gowalla check-ins as split by NGCF/LightGCN: ``train.txt``/``test.txt`` lines ``user item item ...``."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from rankstack.data.dataset import Dataset
from rankstack.data.loaders.specs import DatasetSpec, Download, finish, read_bytes, require
from rankstack.data.schema import EventSchema
from rankstack.errors import DataValidationError

LIGHTGCN = "https://raw.githubusercontent.com/kuandeng/LightGCN/master/Data/gowalla"
SCHEMA = EventSchema(context_columns=("split",))


def read_adjacency_lists(path: Path) -> pl.DataFrame:
    """One row per (user, item) from lines ``user item item ...`` (vectorised; itemless lines skipped)."""
    lines = pl.read_csv(
        read_bytes(path),
        has_header=False,
        new_columns=["line"],
        separator="\t",
        quote_char=None,
        infer_schema=False,
    )
    tokens = lines.select(pl.col("line").str.strip_chars().str.split(" ").alias("tokens")).filter(
        pl.col("tokens").list.len() > 0
    )
    pairs = (
        tokens.select(
            pl.col("tokens").list.first().alias("user_id"), pl.col("tokens").list.slice(1).alias("item_id")
        )
        .explode("item_id")
        .filter(pl.col("item_id").is_not_null() & (pl.col("item_id") != ""))
    )
    typed = pairs.select(pl.all().cast(pl.Int64, strict=False))
    bad = typed.select(pl.any_horizontal(pl.all().is_null())).to_series()
    if bad.any():
        row = int(bad.arg_true()[0])
        raise DataValidationError(str(path), f"expected integer ids, got {pairs.row(row)}")
    return typed


def load_gowalla(root: Path) -> Dataset:
    """Predefined train/test split kept in the ``split`` context column; no timestamps."""
    parts = []
    for split in ("train", "test"):
        path = require(root, (f"{split}.txt.gz", f"{split}.txt"))
        parts.append(read_adjacency_lists(path).with_columns(pl.lit(split).alias("split")))
    events = pl.concat(parts).with_columns(pl.lit("interaction").alias("event"))
    return finish(events, name="gowalla", source=root / "train.txt", schema=SCHEMA)


SPECS = (
    DatasetSpec(
        name="gowalla",
        description="Gowalla check-ins, LightGCN split: 29,858 users, 40,981 items, 1,027,370 interactions",
        subdir="lightgcn/gowalla",
        files=(("train.txt.gz", "train.txt"), ("test.txt.gz", "test.txt")),
        licence="SNAP loc-gowalla; research use",
        default_split="predefined",
        downloads=(
            Download(f"{LIGHTGCN}/train.txt", target="train.txt"),
            Download(f"{LIGHTGCN}/test.txt", target="test.txt"),
        ),
        loader=load_gowalla,
    ),
)
