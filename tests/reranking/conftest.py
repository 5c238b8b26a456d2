"""A small synthetic item catalog shared by the re-ranking tests."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from rankstack.reranking import ItemCatalog

N_ITEMS = 30


def make_catalog(n_items: int = N_ITEMS, seed: int = 0) -> ItemCatalog:
    """Items with category, advertiser, sponsored, in_stock, margin and a tag list."""
    rng = np.random.default_rng(seed)
    table = pl.DataFrame({
        "item_id": np.arange(n_items),
        "category": [f"c{i % 5}" for i in range(n_items)],
        "advertiser": [("house" if i % 7 == 0 else f"a{i % 3}") for i in range(n_items)],
        "sponsored": [i % 4 == 1 for i in range(n_items)],
        "in_stock": [i % 6 != 5 for i in range(n_items)],
        "margin": rng.random(n_items).round(2),
        "tags": [["clearance"] if i % 9 == 8 else ["new"] for i in range(n_items)],
    })
    return ItemCatalog(table, n_items)


@pytest.fixture(scope="session")
def catalog() -> ItemCatalog:
    """The default synthetic catalog."""
    return make_catalog()
