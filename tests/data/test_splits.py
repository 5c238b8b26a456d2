"""Split invariants: no future in train, disjoint parts, ids map back, reproducible with a seed."""

from __future__ import annotations

from datetime import datetime

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rankstack.data.dataset import Dataset
from rankstack.data.schema import EventSchema
from rankstack.data.splits import (
    leave_one_out,
    make_split,
    predefined,
    random_split,
    rolling_windows,
    temporal,
)
from rankstack.errors import DataValidationError

SCHEMA = EventSchema(context_columns=("rid",))

events_strategy = st.lists(
    st.tuples(
        st.sampled_from(["u1", "u2", "u3", "u4"]),
        st.integers(0, 9),
        st.integers(0, 30),
        st.sampled_from(["click", "impression", "purchase"]),
    ),
    min_size=2,
    max_size=60,
)


def _dataset(rows: list[tuple[str, int, int, str]]) -> Dataset:
    df = pl.DataFrame(
        {
            "user_id": [r[0] for r in rows],
            "item_id": [f"i{r[1]}" for r in rows],
            "timestamp": [r[2] for r in rows],
            "event": [r[3] for r in rows],
            "rid": list(range(len(rows))),
        }
    )
    return Dataset.from_events(df, name="synthetic", schema=SCHEMA)


def _per_user_extremes(part: Dataset, fn: str) -> dict[int, datetime]:
    agg = getattr(pl.col("timestamp"), fn)()
    return dict(part.events.group_by("user_id").agg(agg).iter_rows())


def _rids(part: Dataset) -> set[int]:
    return set(part.events.get_column("rid").to_list())


@settings(max_examples=60, deadline=None)
@given(events_strategy)
def test_leave_one_out_never_trains_on_the_future(rows: list[tuple[str, int, int, str]]) -> None:
    ds = _dataset(rows)
    try:
        split = leave_one_out(ds)
    except DataValidationError:
        return  # too few events for any user to hold out
    train_max = _per_user_extremes(split.train, "max")
    for held in (split.validation, split.test):
        for user, t in _per_user_extremes(held, "min").items():
            assert train_max.get(user, t) <= t
    val_max = _per_user_extremes(split.validation, "max")
    for user, t in _per_user_extremes(split.test, "min").items():
        assert val_max.get(user, t) <= t
    assert not _rids(split.train) & _rids(split.test)
    assert not _rids(split.train) & _rids(split.validation)
    assert split.test.events.get_column("user_id").is_unique().all()
    assert set(split.test.events.get_column("event").to_list()) <= {"click", "purchase"}


@settings(max_examples=60, deadline=None)
@given(events_strategy, st.floats(0.3, 0.9))
def test_temporal_cutoff_never_trains_on_the_future(rows: list[tuple[str, int, int, str]], q: float) -> None:
    ds = _dataset(rows)
    try:
        split = temporal(ds, test_start=q)
    except DataValidationError:
        return
    train_max = split.train.events.get_column("timestamp").max()
    test_min = split.test.events.get_column("timestamp").min()
    assert train_max < test_min  # type: ignore[operator]
    assert not _rids(split.train) & _rids(split.test)
    assert _rids(split.train) | _rids(split.test) == set(range(len(rows)))


@settings(max_examples=60, deadline=None)
@given(events_strategy, st.integers(0, 2**16))
def test_random_split_is_a_seeded_partition(rows: list[tuple[str, int, int, str]], seed: int) -> None:
    ds = _dataset(rows)
    try:
        a = random_split(ds, test_ratio=0.3, validation_ratio=0.2, seed=seed)
    except DataValidationError:
        return
    b = random_split(ds, test_ratio=0.3, validation_ratio=0.2, seed=seed)
    parts = [_rids(a.train), _rids(a.validation), _rids(a.test)]
    assert sum(len(p) for p in parts) == len(rows)
    assert set().union(*parts) == set(range(len(rows)))
    assert parts == [_rids(b.train), _rids(b.validation), _rids(b.test)]


@settings(max_examples=40, deadline=None)
@given(events_strategy)
def test_every_internal_id_maps_back_to_its_row(rows: list[tuple[str, int, int, str]]) -> None:
    ds = _dataset(rows)
    try:
        split = random_split(ds, test_ratio=0.5, seed=1)
    except DataValidationError:
        return
    for part in (split.train, split.test):
        ev = part.events
        users = part.user_map.to_external(ev.get_column("user_id").to_numpy()).to_list()
        items = part.item_map.to_external(ev.get_column("item_id").to_numpy()).to_list()
        for rid, user, item in zip(ev.get_column("rid").to_list(), users, items, strict=True):
            assert (user, f"i{rows[rid][1]}") == (rows[rid][0], item)


def test_leave_one_out_holds_out_last_and_second_to_last_positive() -> None:
    rows = [("a", 1, 1, "click"), ("a", 2, 2, "click"), ("a", 3, 3, "impression"), ("a", 4, 4, "click"),
            ("a", 5, 5, "click"), ("a", 6, 6, "impression"), ("b", 1, 1, "click")]
    split = leave_one_out(_dataset(rows))
    assert _rids(split.test) == {4}
    assert _rids(split.validation) == {3}
    assert _rids(split.train) == {0, 1, 2, 6}  # the impression after the validation event is dropped


def test_rolling_windows_expand_training_and_stay_in_order() -> None:
    rows = [(f"u{i % 3}", i % 5, i, "click") for i in range(40)]
    folds = rolling_windows(_dataset(rows), n_windows=3)
    assert len(folds) == 3
    sizes = [len(f.train) for f in folds]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]
    for fold in folds:
        assert fold.train.events.get_column("timestamp").max() < fold.test.events.get_column("timestamp").min()


def test_predefined_uses_the_split_column_and_rejects_unknown_values() -> None:
    df = pl.DataFrame({"user_id": [1, 1, 2], "item_id": [1, 2, 3], "split": ["train", "test", "train"]})
    ds = Dataset.from_events(df, name="pre", schema=EventSchema(context_columns=("split",)))
    split = predefined(ds)
    assert (len(split.train), len(split.test), len(split.validation)) == (2, 1, 0)
    bad = Dataset.from_events(df.with_columns(pl.lit("dev").alias("split")), name="pre",
                              schema=EventSchema(context_columns=("split",)))
    with pytest.raises(DataValidationError, match="split value 'dev'"):
        predefined(bad)


def test_temporal_split_needs_timestamps() -> None:
    ds = Dataset.from_events(pl.DataFrame({"user_id": [1, 2], "item_id": [1, 2]}), name="nots")
    with pytest.raises(DataValidationError, match="timestamp"):
        temporal(ds)


def test_make_split_rejects_unknown_kind() -> None:
    ds = _dataset([("a", 1, 1, "click"), ("a", 2, 2, "click")])
    with pytest.raises(ValueError, match="unknown split kind"):
        make_split(ds, "k-fold")


def test_leave_one_out_needs_a_timestamp_on_every_event() -> None:
    untimed = Dataset.from_events(pl.DataFrame({"user_id": [1, 1, 1], "item_id": [1, 2, 3]}), name="untimed")
    with pytest.raises(DataValidationError, match=r"untimed, column 'timestamp': .*3 of 3 event rows .*row 1\)"):
        leave_one_out(untimed)
    partly = pl.DataFrame({"user_id": [1, 1, 1, 2], "item_id": [1, 2, 3, 1], "timestamp": [5, None, 7, None]})
    with pytest.raises(DataValidationError, match=r"2 of 4 event rows have none \(first at row 2\)"):
        leave_one_out(Dataset.from_events(partly, name="partly"))


@pytest.mark.parametrize("order", [[0, 1, 2, 3], [0, 3, 2, 1]])
def test_leave_one_out_settles_equal_timestamps_by_row_order(order: list[int]) -> None:
    rows = [("a", 1, 1, "click"), ("a", 2, 9, "click"), ("a", 3, 9, "click"), ("a", 4, 9, "click")]
    split = leave_one_out(_dataset([rows[i] for i in order]))  # rid = position in the file
    assert _rids(split.test) == {3} and _rids(split.validation) == {2}  # the last two rows at t = 9
    held = {rows[order[3]][1], rows[order[2]][1]}
    items = set(split.test.item_map.to_external(
        pl.concat([split.test.events, split.validation.events]).get_column("item_id").to_numpy()).to_list())
    assert items == {f"i{i}" for i in held}
