"""Item attributes by internal id (category, advertiser, stock, sponsored, …), as rules and diversity read them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from rankstack.data.dataset import Dataset
from rankstack.data.idmap import IdMap
from rankstack.reranking.rules.rule_config import Match


class UnknownAttributeError(ValueError):
    """An attribute the catalog does not have (the message lists the ones it has)."""


class ItemCatalog:
    """Attributes of items ``0 … n_items−1``; ``attributes`` has an internal ``item_id`` column.

    Items without a row have null attributes (they match no rule test). With ``item_map``, rules name
    items by external id.
    """

    def __init__(self, attributes: pl.DataFrame, n_items: int, item_map: IdMap | None = None) -> None:
        if "item_id" not in attributes.columns:
            raise ValueError("item attributes need an internal 'item_id' column")
        ids = attributes.get_column("item_id")
        if ids.is_duplicated().any():
            raise ValueError("item attributes have duplicate item_id rows")
        if len(ids) and (ids.min() < 0 or ids.max() >= n_items):  # type: ignore[operator]
            raise ValueError(f"item attributes hold item ids outside [0, {n_items})")
        base = pl.DataFrame({"item_id": np.arange(n_items, dtype=np.int64)})
        self.table = base.join(attributes.with_columns(pl.col("item_id").cast(pl.Int64)), on="item_id", how="left")
        self.n_items = n_items
        self.item_map = item_map

    @classmethod
    def from_dataset(cls, dataset: Dataset, extra: pl.DataFrame | None = None) -> ItemCatalog:
        """The dataset's item features (plus ``extra`` columns joined on internal ``item_id``)."""
        table = dataset.item_features if dataset.item_features is not None else pl.DataFrame(
            {"item_id": pl.Series([], dtype=pl.Int64)}
        )
        if extra is not None:
            table = table.join(extra, on="item_id", how="full", coalesce=True)
        return cls(table, dataset.n_items, dataset.item_map)

    @property
    def attributes(self) -> list[str]:
        """Attribute names."""
        return [c for c in self.table.columns if c != "item_id"]

    def column(self, name: str) -> pl.Series:
        """One attribute for every item, row i = item i."""
        if name not in self.table.columns or name == "item_id":
            known = ", ".join(self.attributes) or "none"
            raise UnknownAttributeError(f"unknown item attribute {name!r}; available: {known}")
        return self.table.get_column(name)

    def mask(self, match: Match) -> np.ndarray:
        """Bool [n_items]: items whose attribute passes ``match`` (raises ValueError on a type mismatch)."""
        col = self.column(match.attribute)
        is_list = isinstance(col.dtype, pl.List)
        expr = pl.col(match.attribute)
        if match.contains is not None:
            if not is_list:
                raise ValueError(f"'contains' needs a list attribute; {match.attribute!r} is {col.dtype}")
            test = expr.list.contains(match.contains)
        elif is_list:
            raise ValueError(f"{match.attribute!r} is a list attribute ({col.dtype}); use 'contains'")
        elif match.equals is not None:
            test = expr == match.equals
        elif match.one_of is not None:
            test = expr.is_in(match.one_of)
        else:
            if not col.dtype.is_numeric():
                raise ValueError(f"at_least/at_most need a numeric attribute; {match.attribute!r} is {col.dtype}")
            test = pl.lit(True)
            if match.at_least is not None:
                test = test & (expr >= match.at_least)
            if match.at_most is not None:
                test = test & (expr <= match.at_most)
        try:
            out = self.table.select(test.fill_null(False).alias("m")).get_column("m")
        except pl.exceptions.PolarsError as exc:
            raise ValueError(f"cannot test {match.describe()} on {col.dtype}: {exc}") from None
        return out.to_numpy().astype(bool)

    def groups(self, name: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """(indptr [n_items+1], value codes, value names): the values of ``name`` per item as CSR rows."""
        col = self.column(name)
        lists = col if isinstance(col.dtype, pl.List) else col.cast(pl.String).to_frame().select(
            pl.when(pl.col(name).is_null()).then(pl.lit([], dtype=pl.List(pl.String)))
            .otherwise(pl.concat_list(pl.col(name))).alias(name)
        ).get_column(name)
        lists = lists.cast(pl.List(pl.String)).fill_null([]).list.drop_nulls()
        lengths = lists.list.len().to_numpy().astype(np.int64)
        flat = lists.explode().drop_nulls().to_list()
        names, codes = np.unique(np.asarray(flat, dtype=object).astype(str), return_inverse=True)
        indptr = np.concatenate([[0], np.cumsum(lengths)])
        return indptr, codes.astype(np.int64), [str(n) for n in names]

    def to_internal(self, items: Sequence[int | str]) -> np.ndarray:
        """Internal ids of ``items`` (external ids via the id map when there is one; unknown → -1)."""
        if self.item_map is not None:
            return self.item_map.to_internal(pl.Series(list(items)), strict=False)
        out = np.asarray([int(i) if str(i).lstrip("-").isdigit() else -1 for i in items], dtype=np.int64)
        return np.where((out >= 0) & (out < self.n_items), out, -1)
