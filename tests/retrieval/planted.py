"""A small planted-structure dataset: user groups that each like one block of items."""

from __future__ import annotations

import numpy as np
import polars as pl

from rankstack.data.dataset import Dataset


def planted(n_users: int = 120, n_items: int = 60, groups: int = 4, p_in: float = 0.35, p_out: float = 0.02,
            seed: int = 0) -> tuple[Dataset, Dataset]:
    """(train, test) sharing id maps; items of a user's own group are liked with p_in, others with p_out."""
    rng = np.random.default_rng(seed)
    ug = np.arange(n_users) % groups
    ig = np.arange(n_items) % groups
    prob = np.where(ug[:, None] == ig[None, :], p_in, p_out)
    mask = rng.random((n_users, n_items)) < prob
    users, items = np.nonzero(mask)
    test = rng.random(len(users)) < 0.2
    full = Dataset.from_events(pl.DataFrame({"user_id": users, "item_id": items}), name="planted")
    ev = full.events
    flag = pl.Series(test)
    return full.with_events(ev.filter(~flag)), full.with_events(ev.filter(flag))
