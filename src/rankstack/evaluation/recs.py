"""Evaluate a ranked recommendations file against train / test interaction files with external ids.

Files are CSV or Parquet (by suffix ``.parquet``/``.pq``). Train and test need ``user_id,item_id``;
recommendations need ``user_id,item_id,rank`` with rank 1 = best. Rows in error messages are counted
from 1, header excluded. A rank is taken literally as a list position: gaps leave empty slots.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp

from rankstack.candidates import PAD_ITEM
from rankstack.data.idmap import IdMap
from rankstack.data.schema import check_ids, first_row
from rankstack.errors import DataValidationError
from rankstack.evaluation.metrics import summarize, validate_ks

PAIR_COLUMNS = ("user_id", "item_id")
RECS_COLUMNS = ("user_id", "item_id", "rank")
PARQUET_SUFFIXES = (".parquet", ".pq")


def read_table(path: str | Path, columns: Sequence[str], role: str) -> pl.DataFrame:
    """Read ``columns`` of a CSV/Parquet file, checking that it exists, has them and has no null ids."""
    path = Path(path)
    source = f"{role} file '{path}'"
    if not path.exists():
        raise DataValidationError(source, "file not found")
    if not path.is_file():
        raise DataValidationError(source, "not a regular file")
    try:
        if path.suffix.lower() in PARQUET_SUFFIXES:
            table = pl.read_parquet(path)
        else:
            table = pl.read_csv(path, infer_schema_length=None)
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        raise DataValidationError(source, f"cannot be read: {exc}") from exc
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DataValidationError(source, f"missing column(s) {missing}; found {table.columns}")
    table = table.select(columns)
    check_ids(table, source, PAIR_COLUMNS)
    return table


def _check_ranks(table: pl.DataFrame, source: str) -> pl.DataFrame:
    """Cast ``rank`` to Int64, rejecting nulls, non-integers, ranks < 1 and duplicate (user, rank)."""
    rank = table.get_column("rank")
    if rank.is_null().any():
        raise DataValidationError(source, "missing rank", column="rank", row=first_row(rank.is_null()))
    if rank.dtype == pl.String:
        as_int = rank.str.strip_chars().cast(pl.Int64, strict=False)
        bad = as_int.is_null()
    elif rank.dtype.is_integer():
        as_int, bad = rank.cast(pl.Int64), pl.Series([False] * len(rank))
    elif rank.dtype.is_float():
        bad = ~rank.is_finite() | (rank != rank.floor())
        as_int = rank.cast(pl.Int64, strict=False)
    else:
        raise DataValidationError(source, f"rank must be an integer, column type is {rank.dtype}", column="rank")
    if bad.any():
        row = first_row(bad)
        raise DataValidationError(source, f"rank must be an integer, got {rank[row - 1]!r}", column="rank", row=row)
    low = as_int < 1
    if low.any():
        row = first_row(low)
        raise DataValidationError(source, f"rank must be >= 1, got {as_int[row - 1]}", column="rank", row=row)
    table = table.with_columns(as_int.alias("rank"))
    repeat = table.select(~pl.struct("user_id", "rank").is_first_distinct()).to_series()
    if repeat.any():
        row = first_row(repeat)
        user, rank_value = table.row(row - 1)[0], table.row(row - 1)[2]
        raise DataValidationError(
            source, f"duplicate rank {rank_value} for user {user!r}", column="rank", row=row
        )
    return table


def _unify(series: Sequence[pl.Series]) -> list[pl.Series]:
    """Give id columns read from different files one dtype: as is, Int64, Float64 or else String."""
    dtypes = {s.dtype for s in series}
    if len(dtypes) == 1:
        target: pl.DataType = next(iter(dtypes))
    elif all(d.is_integer() for d in dtypes):
        target = pl.Int64()
    elif all(d.is_numeric() for d in dtypes):
        target = pl.Float64()
    else:
        target = pl.String()
    return [s.cast(target).rename("id") for s in series]


def _binary_csr(users: np.ndarray, items: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    """Binary CSR [n_users, n_items] with a 1 for each (user, item) pair."""
    mat = sp.csr_matrix((np.ones(len(users), dtype=np.float32), (users, items)), shape=shape)
    mat.sum_duplicates()
    mat.data[:] = 1.0
    return mat


def evaluate_rec_files(
    train: str | Path, test: str | Path, recs: str | Path, ks: Sequence[int]
) -> dict[str, float]:
    """Metric means over users with test items for each k (see :func:`summarize`), plus users_evaluated.

    Recs of users without test items are ignored; test users without recs score 0; recommended train
    items are kept as given.
    """
    ks = validate_ks(ks)
    train_df = read_table(train, PAIR_COLUMNS, "train")
    test_df = read_table(test, PAIR_COLUMNS, "test")
    recs_df = _check_ranks(read_table(recs, RECS_COLUMNS, "recs"), f"recs file '{Path(recs)}'")
    if test_df.height == 0:
        raise DataValidationError(f"test file '{Path(test)}'", "no rows: nothing to evaluate")
    frames = (train_df, test_df, recs_df)
    user_cols = _unify([f.get_column("user_id") for f in frames])
    item_cols = _unify([f.get_column("item_id") for f in frames])
    user_map = IdMap.fit(pl.concat(user_cols), name="user_id")
    item_map = IdMap.fit(pl.concat(item_cols), name="item_id")
    shape = (len(user_map), len(item_map))
    u = [user_map.to_internal(c) for c in user_cols]
    i = [item_map.to_internal(c) for c in item_cols]
    train_mat = _binary_csr(u[0], i[0], shape)
    test_mat = _binary_csr(u[1], i[1], shape)
    max_k = ks[-1]
    position = recs_df.get_column("rank").to_numpy() - 1
    keep = position < max_k
    matrix = np.full((shape[0], max_k), PAD_ITEM, dtype=np.int64)
    matrix[u[2][keep], position[keep]] = i[2][keep]
    return summarize(matrix, test_mat, ks, train=train_mat)
