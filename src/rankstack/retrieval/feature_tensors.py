"""Encode a feature table (internal-id keyed polars frame) into tensors: categorical, numeric, multi-valued."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import torch

MAX_CATEGORIES = 10_000
MAX_UNIQUE_SHARE = 0.5  # string columns with more distinct values than this share (titles, ...) are skipped
MIN_SKIP_UNIQUE = 50  # ... unless they have at most this many distinct values


class FeatureEncoder:
    """Vocabularies and scalers fitted on a table; ``encode`` gives dense tensors for ids 0..n-1.

    categorical → index (0 = missing/unknown); numeric → (x − mean)/std and a missing flag;
    multi-valued (list) → padded [n, max_len] indices (0 = padding), mean-pooled by the model.
    """

    def __init__(self, key: str, columns: list[str] | None = None) -> None:
        self.key = key
        self.columns = columns
        self.categorical_: dict[str, list[str]] = {}
        self.numeric_: dict[str, tuple[float, float]] = {}
        self.multi_: dict[str, list[str]] = {}

    def fit(self, table: pl.DataFrame | None) -> FeatureEncoder:
        """Pick and describe usable columns (auto-detected unless ``columns`` is given); returns ``self``."""
        if table is None:
            return self
        cols = self.columns if self.columns is not None else [c for c in table.columns if c != self.key]
        for col in cols:
            s = table.get_column(col)
            if isinstance(s.dtype, pl.List):
                vocab = s.explode().drop_nulls().cast(pl.String).unique().sort().to_list()
                if 0 < len(vocab) <= MAX_CATEGORIES:
                    self.multi_[col] = vocab
            elif s.dtype.is_numeric() and s.dtype != pl.Boolean:
                arr = s.cast(pl.Float64).drop_nulls().to_numpy()
                if len(arr):
                    self.numeric_[col] = (float(arr.mean()), float(arr.std()) or 1.0)
            else:
                vals = s.drop_nulls().cast(pl.String)
                n_unique = vals.n_unique()
                if 0 < n_unique <= min(MAX_CATEGORIES, max(MIN_SKIP_UNIQUE, MAX_UNIQUE_SHARE * len(vals))):
                    self.categorical_[col] = vals.unique().sort().to_list()
        return self

    def describe(self) -> dict[str, Any]:
        """JSON-able description (for persistence)."""
        return {"key": self.key, "columns": self.columns, "categorical": self.categorical_,
                "numeric": {k: list(v) for k, v in self.numeric_.items()}, "multi": self.multi_}

    @classmethod
    def from_description(cls, d: dict[str, Any]) -> FeatureEncoder:
        """Inverse of :meth:`describe`."""
        enc = cls(d["key"], d["columns"])
        enc.categorical_ = {k: list(v) for k, v in d["categorical"].items()}
        enc.numeric_ = {k: (float(v[0]), float(v[1])) for k, v in d["numeric"].items()}
        enc.multi_ = {k: list(v) for k, v in d["multi"].items()}
        return enc

    @property
    def cardinalities(self) -> list[int]:
        """Vocabulary size + 1 (for index 0) of each categorical column, then each multi-valued column."""
        return [len(v) + 1 for v in self.categorical_.values()] + [len(v) + 1 for v in self.multi_.values()]

    @property
    def n_numeric(self) -> int:
        """Numeric input width: a value and a missing flag per numeric column."""
        return 2 * len(self.numeric_)

    def encode(self, table: pl.DataFrame | None, n: int) -> dict[str, torch.Tensor]:
        """``cat`` [n, C] int64, ``num`` [n, 2·N] float32, ``multi.<col>`` [n, L] int64 for rows 0..n-1."""
        ids = np.zeros(0, np.int64) if table is None else table.get_column(self.key).to_numpy().astype(np.int64)
        out: dict[str, torch.Tensor] = {}
        cat = np.zeros((n, len(self.categorical_)), np.int64)
        for j, (col, vocab) in enumerate(self.categorical_.items()):
            assert table is not None
            lookup = {v: i + 1 for i, v in enumerate(vocab)}
            strings = table.get_column(col).cast(pl.String).to_list()
            cat[ids, j] = [lookup.get(v, 0) if v is not None else 0 for v in strings]
        out["cat"] = torch.from_numpy(cat)
        num = np.zeros((n, self.n_numeric), np.float32)
        num[:, 1::2] = 1.0  # missing unless a value is present
        for j, (col, (mean, std)) in enumerate(self.numeric_.items()):
            assert table is not None
            values = table.get_column(col).cast(pl.Float64).to_numpy()
            present = ~np.isnan(values)
            num[ids[present], 2 * j] = (values[present] - mean) / std
            num[ids[present], 2 * j + 1] = 0.0
        out["num"] = torch.from_numpy(num)
        for col, vocab in self.multi_.items():
            assert table is not None
            lookup = {v: i + 1 for i, v in enumerate(vocab)}
            lists = [[lookup.get(str(v), 0) for v in (row or [])] for row in table.get_column(col).to_list()]
            width = max([len(r) for r in lists] + [1])
            arr = np.zeros((n, width), np.int64)
            for row_id, r in zip(ids, lists, strict=True):
                arr[row_id, : len(r)] = r
            out[f"multi.{col}"] = torch.from_numpy(arr)
        return out
