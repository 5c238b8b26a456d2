"""Synthetic sequences with a planted order: every user walks a cycle of items, item i is followed by i + 1."""

from __future__ import annotations

import numpy as np
import polars as pl

from rankstack.data.dataset import Dataset


def cycle_dataset(n_users: int = 150, n_items: int = 40, min_len: int = 6, max_len: int = 14, seed: int = 0) -> Dataset:
    """Each user starts at a random item and steps +1 (mod n_items) with timestamps in order."""
    rng = np.random.default_rng(seed)
    users, items, times = [], [], []
    for u in range(n_users):
        start, length = int(rng.integers(n_items)), int(rng.integers(min_len, max_len + 1))
        for t in range(length):
            users.append(f"u{u}")
            items.append(f"i{(start + t) % n_items}")
            times.append(1_700_000_000 + 60 * t)
    frame = pl.DataFrame({"user_id": users, "item_id": items, "timestamp": times}).with_columns(
        pl.from_epoch("timestamp"))
    return Dataset.from_events(frame, name="cycles")
