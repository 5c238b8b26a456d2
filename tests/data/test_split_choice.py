"""The default split is chosen for a stated reason, and data without order gets none rather than a random one."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from rankstack.data.dataset import Dataset
from rankstack.data.loaders import REGISTRY, ReadOptions, choose_split, read_event_log
from rankstack.data.schema import EventSchema
from rankstack.errors import DataValidationError


def frame(**extra: list[object]) -> Dataset:
    """Two users, three events each, plus ``extra`` columns (declared as context when not canonical)."""
    base = {"user_id": [1, 1, 1, 2, 2, 2], "item_id": [1, 2, 3, 1, 2, 3], **extra}
    context = tuple(c for c in extra if c not in ("timestamp",))
    return Dataset.from_events(pl.DataFrame(base), name="t", schema=EventSchema(context_columns=context))


def test_asked_for_wins() -> None:
    assert choose_split(frame(), "random").kind == "random"
    assert choose_split(frame(), "random").reason == "asked for"


def test_registered_datasets_keep_their_standard_split() -> None:
    choice = choose_split(frame(), spec=REGISTRY["gowalla"])
    assert (choice.kind, choice.reason) == ("predefined", "the standard split of gowalla")


def test_split_column_means_predefined() -> None:
    choice = choose_split(frame(split=["train", "train", "test"] * 2))
    assert (choice.kind, choice.reason) == ("predefined", "the data has a 'split' column")


def test_timestamps_mean_leave_one_out_with_the_reason() -> None:
    choice = choose_split(frame(timestamp=[1, 2, 3, 1, 2, 3]))
    assert choice.kind == "leave_one_out" and "every event has a timestamp" in choice.reason


def test_file_order_is_named_as_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("user_id,item_id\n1,1\n1,2\n1,3\n")
    loaded = read_event_log(path, ReadOptions(order="file"))
    choice = choose_split(loaded.dataset, info=loaded.info)
    assert choice.kind == "leave_one_out" and choice.reason.startswith("order 'file' was given")


@pytest.mark.parametrize("timestamps", [None, [1, 2, None, 1, 2, 3]])
def test_no_default_split_without_full_order(timestamps: list[int | None] | None) -> None:
    data = frame(timestamp=timestamps) if timestamps else frame()
    with pytest.raises(DataValidationError) as err:
        choose_split(data)
    message = str(err.value)
    assert err.value.column == "timestamp" and "have no timestamp, so there is no default split" in message
    for way in ("--columns timestamp=COLUMN", "--order file", "--split random", "--test-file"):
        assert way in message
