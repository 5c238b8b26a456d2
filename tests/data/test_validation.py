"""Bad inputs and the message each must give: file name, column and 1-based data row where they apply."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rankstack.data.filters import filter_min_count
from rankstack.data.loaders import load_event_log
from rankstack.data.loaders.event_log import read_table
from rankstack.data.schema import validate_events
from rankstack.errors import DataValidationError


@dataclass(frozen=True)
class Case:
    """One bad input: CSV text (or a frame written as Parquet) and the expected message parts."""

    id: str
    data: str | pl.DataFrame
    message: str
    column: str | None = None
    row: int | None = None
    columns: dict[str, str] | None = None
    min_item_count: int = 0
    suffix: str = ".csv"
    kwargs: dict = field(default_factory=dict)


CASES = [
    Case("missing column", "user_id,timestamp\n1,10\n", "missing required column(s) ['item_id']"),
    Case("extra column", "user_id,item_id,colour\n1,2,red\n", "unexpected column(s) ['colour']"),
    Case("null user id", "user_id,item_id\n1,2\n,3\n", "null or empty id", "user_id", 2),
    Case(
        "empty-string item id",
        pl.DataFrame({"user_id": ["a", "b", "c"], "item_id": ["x", "y", "  "]}),
        "null or empty id",
        "item_id",
        3,
        suffix=".parquet",
    ),
    Case(
        "unparsable timestamp",
        "user_id,item_id,timestamp\n1,2,2024-01-01T00:00:00\n1,3,yesterday\n",
        "unparsable timestamp 'yesterday'",
        "timestamp",
        2,
    ),
    Case(
        "unknown event type",
        "user_id,item_id,event\n1,2,click\n1,3,like\n",
        "unknown event type 'like'",
        "event",
        2,
    ),
    Case(
        "negative propensity",
        "user_id,item_id,propensity\n1,2,0.5\n1,3,0.2\n1,4,-0.1\n",
        "propensity must be in (0, 1], got -0.1",
        "propensity",
        3,
    ),
    Case(
        "propensity above one",
        "user_id,item_id,propensity\n1,2,1.5\n",
        "propensity must be in (0, 1], got 1.5",
        "propensity",
        1,
    ),
    Case(
        "duplicate events",
        "user_id,item_id,event\n1,2,click\n1,3,click\n1,2,click\n",
        "duplicate events: row 3 repeats row 1",
        None,
        3,
    ),
    Case("empty data", "user_id,item_id\n", "no events: the data is empty"),
    Case(
        "empty after filtering",
        "user_id,item_id\n1,2\n2,3\n3,2\n",
        "no events left after filtering",
        "item_id",
        None,
        min_item_count=5,
    ),
    Case(
        "bad numeric value",
        "user_id,item_id,value\n1,2,3.5\n1,3,lots\n",
        "expected a number, got 'lots'",
        "value",
        2,
    ),
    Case("bad position", "user_id,item_id,position\n1,2,0\n1,3,-1\n", "position must be ≥ 0", "position", 2),
    Case(
        "mapped column absent",
        "uid,item_id\n1,2\n",
        "mapped column 'user' (for 'user_id') not found",
        "user",
        columns={"user_id": "user"},
    ),
    Case(
        "mapping to unknown name",
        "uid,item_id\n1,2\n",
        "mapping key 'customer' is not a canonical",
        columns={"user_id": "uid", "customer": "uid"},
    ),
    Case("unsupported file type", "{}", "unsupported file type", suffix=".json"),
]


def write(case: Case, folder: Path) -> Path:
    """Write the case's data to ``folder/events<suffix>``."""
    path = folder / f"events{case.suffix}"
    if isinstance(case.data, pl.DataFrame):
        case.data.write_parquet(path)
    else:
        path.write_text(case.data)
    return path


def check(message: str, case: Case, source: str) -> None:
    """The message names the source, the column and the row, and says what is wrong."""
    assert message.startswith(source), message
    assert case.message in message, message
    if case.column is not None:
        assert f"column '{case.column}'" in message, message
    if case.row is not None:
        assert f"row {case.row}:" in message, message


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_file_is_reported_precisely(case: Case, tmp_path: Path) -> None:
    path = write(case, tmp_path)
    with pytest.raises(DataValidationError) as err:
        if case.min_item_count:
            filter_min_count(
                read_table(path), column="item_id", min_count=case.min_item_count, source=str(path)
            )
        else:
            load_event_log(path, columns=case.columns)
    check(str(err.value), case, str(path))
    assert err.value.source == str(path) and err.value.column == case.column and err.value.row == case.row


IN_MEMORY = [
    c for c in CASES if isinstance(c.data, str) and c.suffix == ".csv" and not (c.columns or c.min_item_count)
]


@pytest.mark.parametrize("case", IN_MEMORY, ids=[c.id for c in IN_MEMORY])
def test_validate_events_in_memory(case: Case) -> None:
    assert isinstance(case.data, str)
    frame = pl.read_csv(io.StringIO(case.data), infer_schema=False)
    with pytest.raises(DataValidationError) as err:
        validate_events(frame, source="inline.csv")
    check(str(err.value), case, "inline.csv")


@given(head=st.integers(1, 40), repeated=st.integers(1, 40), gap=st.integers(0, 5))
@settings(max_examples=60, deadline=None)
def test_duplicate_error_names_the_first_repeat_and_its_original(head: int, repeated: int, gap: int) -> None:
    """``head`` distinct rows, ``gap`` more, then the first ``repeated`` of them again: row head+gap+1 repeats row 1."""
    repeated = min(repeated, head)
    distinct = pl.DataFrame({"user_id": [f"u{i}" for i in range(head + gap)], "item_id": ["i"] * (head + gap)})
    frame = pl.concat([distinct, distinct.head(repeated)])
    with pytest.raises(DataValidationError) as err:
        validate_events(frame, source="log.csv")
    assert err.value.row == head + gap + 1
    assert f"row {head + gap + 1} repeats row 1 " in str(err.value)


def test_duplicate_error_names_the_original_of_a_later_repeat() -> None:
    frame = pl.DataFrame({"user_id": ["a", "b", "c", "b", "a"], "item_id": ["x"] * 5})
    with pytest.raises(DataValidationError, match=r"row 4 repeats row 2 "):
        validate_events(frame, source="log.csv")


def test_duplicates_can_be_dropped(tmp_path: Path) -> None:
    from rankstack.data.schema import EventSchema

    path = tmp_path / "dups.csv"
    path.write_text("user_id,item_id,event\n1,2,click\n1,3,click\n1,2,click\n")
    data = load_event_log(path, schema=EventSchema(duplicates="drop"))
    assert len(data) == 2


def test_filter_keeps_frequent_items() -> None:
    frame = pl.DataFrame({"user_id": [1, 2, 3, 1], "item_id": [7, 7, 7, 8]})
    assert (
        filter_min_count(frame, column="item_id", min_count=3, source="x").get_column("item_id").to_list()
        == [7] * 3
    )
    assert filter_min_count(frame, column="item_id", min_count=1, source="x").height == 4
    with pytest.raises(DataValidationError, match="x, column 'sku': cannot filter on missing column"):
        filter_min_count(frame, column="sku", min_count=2, source="x")
