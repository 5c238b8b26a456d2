"""Maps between external ids (any hashable scalar type) and dense internal integers 0..n-1."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import polars as pl

from rankstack.errors import DataValidationError
from rankstack.io import atomic_write

_SMALL = 256


class IdMap:
    """A bijection external id ↔ internal index; internal index i is the i-th sorted distinct id."""

    def __init__(self, external: pl.Series, *, name: str = "id") -> None:
        external = external.rename("external_id")
        if external.null_count():
            raise DataValidationError(name, "id map cannot contain null ids")
        if external.n_unique() != len(external):
            raise DataValidationError(name, "id map has duplicate external ids")
        self.name = name
        self.external_ = external
        self._lookup = pl.DataFrame(
            {"external_id": external, "internal_id": np.arange(len(external), dtype=np.int64)}
        )
        self._dict: dict[object, int] | None = None
        self._values: list[object] | None = None

    @classmethod
    def fit(cls, values: pl.Series | Iterable[object], *, name: str = "id") -> IdMap:
        """Build a map from the distinct values, sorted so the map does not depend on row order."""
        series = values if isinstance(values, pl.Series) else pl.Series(list(values))
        return cls(series.drop_nulls().unique().sort(), name=name)

    def __len__(self) -> int:
        return len(self.external_)

    def __repr__(self) -> str:
        return f"IdMap(name={self.name!r}, size={len(self)}, dtype={self.external_.dtype})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdMap) and self.external_.equals(other.external_)

    @property
    def dtype(self) -> pl.DataType:
        """Polars dtype of the external ids."""
        return self.external_.dtype

    def to_internal(self, values: pl.Series | Iterable[object], *, strict: bool = True) -> np.ndarray:
        """Internal indices of ``values``; unknown ids raise (strict) or map to -1."""
        if not isinstance(values, pl.Series):
            values = list(values)
            fast = self._small_lookup(values)
            if fast is not None and (not strict or (fast >= 0).all()):
                return fast
        series = values if isinstance(values, pl.Series) else pl.Series(values)
        series = series.rename("external_id")
        if series.dtype != self.dtype:
            series = series.cast(self.dtype, strict=False)
        mapped = (
            series.to_frame()
            .join(self._lookup, on="external_id", how="left", maintain_order="left")
            .get_column("internal_id")
        )
        if strict and mapped.null_count():
            first = int(mapped.is_null().arg_true()[0])
            raise KeyError(f"{self.name}: unknown external id {series[first]!r} (position {first})")
        return mapped.fill_null(-1).to_numpy().astype(np.int64)

    def _small_lookup(self, values: list[object]) -> np.ndarray | None:
        """A dict lookup for a few string ids (per-request serving), or None where the join must decide.

        Only string ids against a string map qualify, so the answer is exactly the join's; the dict is built
        on first use.
        """
        if len(values) > _SMALL or self.dtype != pl.String or not all(type(v) is str for v in values):
            return None
        if self._dict is None:
            self._dict = {ext: i for i, ext in enumerate(self.external_.to_list())}
        table = self._dict
        return np.fromiter((table.get(v, -1) for v in values), dtype=np.int64, count=len(values))

    def to_external(self, ids: np.ndarray | Iterable[int]) -> pl.Series:
        """External ids for internal indices (raises IndexError when out of range)."""
        arr = np.asarray(ids, dtype=np.int64)
        if arr.size and (arr.min() < 0 or arr.max() >= len(self)):
            raise IndexError(f"{self.name}: internal id out of range [0, {len(self)})")
        return self.external_.gather(arr)

    def to_external_list(self, ids: np.ndarray | Iterable[int]) -> list[object]:
        """External ids as Python values, from a list built on first use (per-request serving: no Series)."""
        arr = np.asarray(ids, dtype=np.int64)
        if arr.size and (arr.min() < 0 or arr.max() >= len(self)):
            raise IndexError(f"{self.name}: internal id out of range [0, {len(self)})")
        if self._values is None:
            self._values = self.external_.to_list()
        values = self._values
        return [values[i] for i in arr.tolist()]

    def save(self, path: str | Path) -> None:
        """Write the map as Parquet (column ``external_id``, row i = internal id i)."""
        with atomic_write(Path(path)) as tmp:
            self.external_.to_frame().write_parquet(tmp)

    @classmethod
    def load(cls, path: str | Path, *, name: str = "id") -> IdMap:
        """Read a map written by :meth:`save`."""
        return cls(pl.read_parquet(path).get_column("external_id"), name=name)
