"""The readers of headerless text and JSON lines: one row per event with its file line; bad files named by line."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from rankstack.data.loaders.text_formats import LINE, format_of, read_raw
from rankstack.errors import DataValidationError


@pytest.mark.parametrize(("name", "fmt"), [
    ("a.csv", "csv"), ("a.csv.gz", "csv"), ("a.TSV", "tsv"), ("a.parquet", "parquet"), ("a.pq", "parquet"),
    ("a.jsonl", "sessions"), ("a.ndjson.gz", "sessions"),
])
def test_format_by_suffix(name: str, fmt: str) -> None:
    assert format_of(Path(name), "auto") == fmt
    assert format_of(Path(name), "pairs") == "pairs"  # an explicit format wins


def test_a_text_file_needs_a_format() -> None:
    with pytest.raises(DataValidationError, match="pass a format: csv or tsv"):
        format_of(Path("log.txt"), "auto")


def test_pairs_split_on_runs_of_spaces_and_tabs_and_skip_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "u.data"
    path.write_text("1\t10 \t5\t881250949\n\n  2   20 3 891717742\n")
    frame = read_raw(path, "pairs")
    assert frame.columns == ["1", "2", "3", "4", LINE]
    assert frame.rows() == [("1", "10", "5", "881250949", 1), ("2", "20", "3", "891717742", 3)]


def test_sequences_explode_in_line_order_and_skip_itemless_users(tmp_path: Path) -> None:
    path = tmp_path / "seqs.txt.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("u1 b a c\nu2\nu3 a\n")
    frame = read_raw(path, "sequences")
    assert frame.rows() == [("u1", "b", 1), ("u1", "a", 1), ("u1", "c", 1), ("u3", "a", 3)]


def test_sessions_one_row_per_event_with_session_fields(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    lines = [{"session": 7, "events": [{"aid": 1, "ts": 1000, "type": "clicks"}, {"aid": 2, "ts": 2000,
                                                                               "type": "orders"}]},
             {"session": 8, "events": []}, {"session": 9, "events": [{"aid": 1, "ts": 500, "type": "carts"}]}]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    frame = read_raw(path, "sessions")
    assert frame.select("session", "aid", "ts", "type", LINE).rows() == [
        ("7", "1", "1000", "clicks", 1), ("7", "2", "2000", "orders", 1), ("9", "1", "500", "carts", 3)]


BAD = [
    ("ragged pairs", "pairs", "1 2\n1 2 3\n", "line 2 has 3 fields, the first line 2"),
    ("one field", "pairs", "1\n2\n", "line 1: expected at least 'user item'"),
    ("header in pairs", "pairs", "user item\n1 2\n", "line 1 looks like a header ['user', 'item']"),
    ("header in sequences", "sequences", "user_id items\n1 2 3\n", "looks like a header"),
    ("empty", "sequences", "\n\n", "no events: the file is empty"),
    ("no events list", "sessions", '{"session": 1, "clicks": []}\n', "no 'events' list of events"),
    ("events not objects", "sessions", '{"session": 1, "events": [1, 2]}\n', "must be a list of objects"),
    ("not json", "sessions", "user,item\n", "cannot read file as sessions"),
]


@pytest.mark.parametrize(("fmt", "text", "message"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_files_are_named_with_the_line(tmp_path: Path, fmt: str, text: str, message: str) -> None:
    path = tmp_path / "log.txt"
    path.write_text(text)
    with pytest.raises(DataValidationError) as err:
        read_raw(path, fmt)
    assert str(err.value).startswith(str(path)) and message in str(err.value)
