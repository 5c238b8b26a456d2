"""Reading your own logs: mapping, missing-value spellings, repeats, event order, time units and split files."""

from __future__ import annotations

import json
import tempfile
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rankstack.data.loaders import ReadOptions, read_event_log
from rankstack.data.splits import predefined
from rankstack.errors import DatasetNotFoundError, DataValidationError

SHARED_OTTO = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "otto_sample" / "train.jsonl"


def write(tmp_path: Path, name: str, text: str) -> Path:
    """``text`` written to ``tmp_path / name``."""
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("spelling", ["NaN", "nan", "NA", "N/A", "null", "NULL", "None", " none "])
def test_a_missing_item_spelling_is_an_error_naming_row_and_spelling(tmp_path: Path, spelling: str) -> None:
    path = write(tmp_path, "log.csv", f"user_id,item_id\nu1,a\nu2,{spelling}\n")
    with pytest.raises(DataValidationError) as err:
        read_event_log(path)
    assert err.value.column == "item_id" and err.value.row == 2
    assert f"{spelling.strip()!r} is read as a missing value" in str(err.value)


def test_missing_spellings_elsewhere_become_null_and_are_counted(tmp_path: Path) -> None:
    path = write(tmp_path, "log.csv", "user_id,item_id,value,timestamp\nu1,a,NaN,1\nu1,b,,2\nu2,a,3,N/A\nu2,b,4,4\n")
    loaded = read_event_log(path)
    assert loaded.dataset.events.get_column("value").to_list() == [None, None, 3.0, 4.0]
    assert loaded.dataset.events.get_column("timestamp").null_count() == 1
    assert loaded.info is not None and loaded.info.missing == {"value": {"NaN": 1, "": 1}, "timestamp": {"N/A": 1}}


def test_repeated_rows_fail_naming_the_lines_or_are_dropped_and_counted(tmp_path: Path) -> None:
    path = write(tmp_path, "seqs.txt", "u1 a b a\nu2 c\nu2 c\n")
    # sequences: each item is one event at its own position, so u1's two a's are distinct; u2's c's are too
    assert len(read_event_log(path, ReadOptions(format="sequences")).dataset) == 5
    pairs = write(tmp_path, "pairs.txt", "u1 a\nu2 b\n\nu1 a\n")
    with pytest.raises(DataValidationError, match=r"row 4 repeats row 1 .*--duplicates drop") as err:
        read_event_log(pairs, ReadOptions(format="pairs", duplicates="error"))
    assert err.value.row == 4
    loaded = read_event_log(pairs, ReadOptions(format="pairs", duplicates="drop"))  # dropped, and said so
    assert len(loaded.dataset) == 2 and loaded.info is not None and loaded.info.duplicates == 1
    assert any(note.startswith("dropped 1 repeated row(s)") for note in loaded.info.notes)
    lenient = read_event_log(pairs, ReadOptions(format="pairs", duplicates="error"), strict=False)  # inspect
    assert lenient.info is not None and lenient.info.duplicates == 1 and lenient.info.duplicates_action == "error"


def test_file_order_numbers_the_rows_across_split_files(tmp_path: Path) -> None:
    train = write(tmp_path, "train.txt", "u1 a b\nu2 c\n")
    test = write(tmp_path, "test.txt", "u1 c\nu2 a\n")
    loaded = read_event_log(train, ReadOptions(format="sequences", test_file=test))
    events = loaded.dataset.events
    assert events.get_column("split").to_list() == ["train"] * 3 + ["test"] * 2
    seconds = events.get_column("timestamp").dt.epoch("s").to_list()
    assert seconds == [0, 1, 2, 3, 4]
    assert loaded.info is not None and loaded.info.split_from == "files" and loaded.info.order == "file"
    split = predefined(loaded.dataset)
    assert (len(split.train), len(split.test)) == (3, 2)
    assert loaded.dataset.item_map.to_external(split.test.events.get_column("item_id").to_numpy()).to_list() == \
        ["c", "a"]  # one id map over both files


@pytest.mark.parametrize(("text", "options", "message"), [
    ("user_id,item_id,timestamp\n1,2,3\n", {"order": "file"}, "the file has a timestamp column"),
    ("user_id,item_id\n1,2\n", {"order": "time"}, "order 'time' needs a timestamp column"),
    ("user,item\n1,2\n", {}, "map them: --columns user_id=user,item_id=item"),
    ("user_id,item_id,rating,genre\n1,2,3,x\n", {},
     "map them to canonical names (--columns value=rating) or leave them out with --ignore-columns rating,genre"),
    ("user_id,item_id\n1,2\n", {"ignore": ("genre",)}, "column(s) ['genre'] to leave out are not in the file"),
    ("user_id,item_id,timestamp\n1,2,2024-01-01\n", {"time_unit": "ms"}, "expected a number of ms since 1970"),
    ("uid,item_id\n1,2\n", {"columns": {"user_id": "user"}}, "mapped column 'user' (for 'user_id') not found"),
])
def test_bad_csv_reads_say_what_to_do(tmp_path: Path, text: str, options: dict[str, object], message: str) -> None:
    path = write(tmp_path, "log.csv", text)
    with pytest.raises(DataValidationError) as err:
        read_event_log(path, ReadOptions.model_validate(options))
    assert str(err.value).startswith(str(path)) and message in str(err.value)


def test_a_split_column_in_a_split_file_is_refused(tmp_path: Path) -> None:
    train = write(tmp_path, "train.csv", "user_id,item_id,split\n1,2,train\n")
    test = write(tmp_path, "test.csv", "user_id,item_id\n1,3\n")
    with pytest.raises(DataValidationError, match="split is given by separate"):
        read_event_log(train, ReadOptions(test_file=test))
    with pytest.raises(DatasetNotFoundError, match="test file not found"):
        read_event_log(test, ReadOptions(test_file=tmp_path / "absent.csv"))


def test_pairs_columns_by_position_with_the_defaults_overridden(tmp_path: Path) -> None:
    path = write(tmp_path, "u.data", "1 10 4 881250949\n2 10 5 881250950\n")
    both = read_event_log(path, ReadOptions(format="pairs")).dataset.events
    assert both.get_column("value").to_list() == [4.0, 5.0]
    assert both.get_column("timestamp")[0] == datetime(1997, 12, 4, 15, 55, 49)
    three = write(tmp_path, "three.txt", "1 10 881250949\n2 10 881250950\n")
    events = read_event_log(three, ReadOptions(format="pairs", columns={"timestamp": "3"})).dataset.events
    assert events.get_column("value").null_count() == 2 and events.get_column("timestamp").null_count() == 0


def test_time_units_and_the_milliseconds_note(tmp_path: Path) -> None:
    path = write(tmp_path, "log.csv", "user_id,item_id,timestamp\n1,2,1659304800025\n")
    in_ms = read_event_log(path, ReadOptions(time_unit="ms"))
    assert in_ms.dataset.events.get_column("timestamp")[0] == datetime(2022, 7, 31, 22, 0, 0, 25_000)
    as_seconds = read_event_log(path)
    assert as_seconds.info is not None and "are they milliseconds? pass --time-unit ms" in as_seconds.info.notes[0]


def test_sessions_map_otto_fields_and_event_types(tmp_path: Path) -> None:
    lines = [{"session": 0, "events": [{"aid": 11, "ts": 1659304800025, "type": "clicks"},
                                       {"aid": 12, "ts": 1659304904511, "type": "carts"},
                                       {"aid": 12, "ts": 1659304904999, "type": "orders"}]}]
    path = write(tmp_path, "otto.jsonl", "".join(json.dumps(line) + "\n" for line in lines))
    loaded = read_event_log(path)
    events = loaded.dataset.events
    assert events.get_column("event").to_list() == ["click", "cart", "purchase"]
    assert events.get_column("timestamp")[0] == datetime(2022, 7, 31, 22, 0, 0, 25_000)
    assert loaded.info is not None and loaded.info.columns == {
        "user_id": "session", "item_id": "aid", "timestamp": "ts", "event": "type"}


@pytest.mark.skipif(not SHARED_OTTO.is_file(), reason="../shared/data/otto_sample is absent")
def test_the_otto_sample_reads_with_its_published_counts() -> None:
    data = read_event_log(SHARED_OTTO).dataset
    assert (data.n_users, data.n_items, len(data)) == (20, 510, 862)
    assert dict(data.events.group_by("event").len().iter_rows()) == {"click": 800, "cart": 52, "purchase": 10}
    first, last = data.events.get_column("timestamp").min(), data.events.get_column("timestamp").max()
    assert isinstance(first, datetime) and isinstance(last, datetime)
    assert first >= datetime(2022, 7, 31, 22) and last <= datetime(2022, 8, 28, 22)


def test_parquet_ids_and_integer_ids_across_files(tmp_path: Path) -> None:
    train = tmp_path / "train.parquet"
    pl.DataFrame({"user_id": [1, 2], "item_id": ["7", "8"]}).write_parquet(train)
    test = write(tmp_path, "test.csv", "user_id,item_id\n1,8\n")
    data = read_event_log(train, ReadOptions(test_file=test)).dataset
    assert data.user_map.dtype == pl.String  # Int64 in one file, strings in the other: strings for both
    assert len(data) == 3 and data.n_users == 2


@given(lengths=st.lists(st.integers(0, 6), min_size=1, max_size=8), seed=st.integers(0, 1000))
@settings(max_examples=40, deadline=None)
def test_sequences_and_file_ordered_pairs_keep_every_users_order(lengths: list[int], seed: int) -> None:
    """Whatever the users' histories, both files read back to the same per-user item order as written."""
    rng = np.random.default_rng(seed)
    written = {f"u{n}": [f"i{i}" for i in rng.integers(0, 9, size=length)] for n, length in enumerate(lengths)}
    written = {user: items for user, items in written.items() if items}
    if not written:
        return
    with tempfile.TemporaryDirectory() as folder:
        seqs = Path(folder) / "seqs.txt"
        seqs.write_text("".join(f"{user} {' '.join(items)}\n" for user, items in written.items()))
        pairs = Path(folder) / "pairs.txt"  # the same events, users interleaved (row i of every user in turn)
        rows = [(user, items[i]) for i in range(max(map(len, written.values()))) for user, items in written.items()
                if i < len(items)]
        pairs.write_text("".join(f"{user} {item}\n" for user, item in rows))
        for data in (read_event_log(seqs, ReadOptions(format="sequences")).dataset,
                     read_event_log(pairs, ReadOptions(format="pairs", order="file", duplicates="drop")).dataset):
            back = {str(data.user_map.to_external(np.array([u]))[0]): data.item_map.to_external(seq).to_list()
                    for u, seq in enumerate(data.sequences())}
            expected = written if data.name == "seqs" else {u: _first_rows(rows, u) for u in written}
            assert back == expected


def _first_rows(rows: list[tuple[str, str]], user: str) -> list[str]:
    """``user``'s items in row order, a row identical to an earlier one dropped (``--duplicates drop``)."""
    seen: set[tuple[str, str]] = set()
    out = []
    for row in rows:
        if row[0] == user and row not in seen:
            out.append(row[1])
        seen.add(row)
    return out
