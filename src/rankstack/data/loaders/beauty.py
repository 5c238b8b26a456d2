"""Amazon Beauty as preprocessed for BERT4Rec: ``user item`` lines in time order within each user."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from rankstack.data.dataset import Dataset
from rankstack.data.loaders.specs import DatasetSpec, Download, finish, read_bytes, require

BERT4REC = "https://raw.githubusercontent.com/FeiSun/BERT4Rec/master/data"


def load_beauty(root: Path) -> Dataset:
    """Timestamp = 0-based position in the user's sequence as epoch seconds (only the order is meaningful)."""
    path = require(root, ("beauty.txt.gz", "beauty.txt"))
    pairs = pl.read_csv(
        read_bytes(path), has_header=False, separator=" ", schema={"user_id": pl.Int64, "item_id": pl.Int64}
    )
    events = pairs.with_columns(
        pl.int_range(pl.len()).over("user_id").alias("timestamp"), pl.lit("interaction").alias("event")
    )
    return finish(events, name="beauty", source=path)


SPECS = (
    DatasetSpec(
        name="beauty",
        description="Amazon Beauty (BERT4Rec): 40,226 users, 54,542 items, 353,962 interactions",
        subdir="bert4rec_amazon_beauty",
        files=(("beauty.txt.gz", "beauty.txt"),),
        licence="McAuley Amazon reviews; research use",
        default_split="leave_one_out",
        downloads=(Download(f"{BERT4REC}/beauty.txt", target="beauty.txt"),),
        loader=load_beauty,
    ),
)
