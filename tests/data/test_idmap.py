"""IdMap properties: external → internal → external round trips, persistence, unknown ids."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rankstack.data.idmap import IdMap
from rankstack.errors import DataValidationError

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
TEXT = st.text(min_size=0, max_size=12)
id_lists = st.one_of(st.lists(INT64, min_size=1, max_size=60), st.lists(TEXT, min_size=1, max_size=60))


@given(id_lists)
@settings(max_examples=150, deadline=None)
def test_round_trip(values: list) -> None:
    id_map = IdMap.fit(values)
    distinct = sorted(set(values))
    assert len(id_map) == len(distinct)
    internal = id_map.to_internal(values)
    assert internal.dtype == np.int64 and internal.min() >= 0 and internal.max() < len(id_map)
    assert id_map.to_external(internal).to_list() == values
    assert id_map.to_external_list(internal) == values
    assert id_map.to_external(np.arange(len(id_map))).to_list() == distinct  # dense and sorted


@given(id_lists)
@settings(max_examples=40, deadline=None)
def test_fit_ignores_row_order(values: list) -> None:
    assert IdMap.fit(values) == IdMap.fit(list(reversed(values)))


@given(id_lists)
@settings(max_examples=40, deadline=None)
def test_save_load_round_trip(values: list) -> None:
    id_map = IdMap.fit(values)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "map.parquet"
        id_map.save(path)
        loaded = IdMap.load(path)
    assert loaded == id_map and loaded.dtype == id_map.dtype
    np.testing.assert_array_equal(loaded.to_internal(values), id_map.to_internal(values))


@given(st.lists(st.integers(-1000, 1000), min_size=1, max_size=40, unique=True), st.integers(1001, 5000))
@settings(max_examples=60, deadline=None)
def test_unknown_ids_raise_or_map_to_minus_one(known: list[int], unknown: int) -> None:
    id_map = IdMap.fit(known, name="items")
    with pytest.raises(KeyError, match=f"items: unknown external id {unknown}"):
        id_map.to_internal([known[0], unknown])
    mapped = id_map.to_internal([unknown, known[0], unknown], strict=False)
    assert mapped[0] == -1 and mapped[2] == -1 and mapped[1] == id_map.to_internal([known[0]])[0]
    assert id_map.to_internal(pl.Series(["not-an-int"]), strict=False).tolist() == [-1]  # uncastable


@given(st.lists(TEXT, min_size=1, max_size=20, unique=True))
@settings(max_examples=40, deadline=None)
def test_unknown_strings_and_other_dtypes(known: list[str]) -> None:
    id_map = IdMap.fit(known)
    absent = "\x00absent" + "".join(known)
    assert id_map.to_internal([absent], strict=False).tolist() == [-1]


def test_out_of_range_internal_ids_and_bad_maps() -> None:
    id_map = IdMap.fit([10, 20])
    with pytest.raises(IndexError):
        id_map.to_external([2])
    with pytest.raises(IndexError):
        id_map.to_external([-1])
    with pytest.raises(IndexError):
        id_map.to_external_list([2])
    with pytest.raises(DataValidationError, match="duplicate"):
        IdMap(pl.Series([1, 1]))
    with pytest.raises(DataValidationError, match="null"):
        IdMap(pl.Series([1, None]))


@given(st.lists(st.text(max_size=4), min_size=1, max_size=30, unique=True),
       st.lists(st.text(max_size=4), max_size=20))
def test_small_string_lookups_equal_the_join(known: list[str], asked: list[str]) -> None:
    """The dict fast path used per request answers exactly what the polars join answers."""
    m = IdMap.fit(known)
    fast = m.to_internal(asked, strict=False)
    assert fast.tolist() == m.to_internal(pl.Series(asked, dtype=pl.String), strict=False).tolist()
    if any(a not in known for a in asked):
        with pytest.raises(KeyError, match="unknown external id"):
            m.to_internal(asked)
