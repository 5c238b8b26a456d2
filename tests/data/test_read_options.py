"""ReadOptions and the ``--columns`` parser: good mappings pass, bad ones say what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from rankstack.data.loaders.read_options import ReadOptions, check_column_names, parse_columns


def test_parse_columns_reads_pairs_and_tolerates_spaces() -> None:
    assert parse_columns(" user_id=uid, item_id = iid ,timestamp=ts,") == {
        "user_id": "uid", "item_id": "iid", "timestamp": "ts"}
    assert parse_columns(None) == {} and parse_columns("") == {}


@pytest.mark.parametrize(("text", "message"), [
    ("user_id", "expected canonical=column pairs"),
    ("=uid", "expected canonical=column pairs"),
    ("user_id=", "expected canonical=column pairs"),
    ("user_id=a,user_id=b", "'user_id' is mapped twice"),
])
def test_parse_columns_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_columns(text)


def test_column_names_must_be_canonical() -> None:
    check_column_names({"user_id": "u", "split": "fold", "events": "items"})
    with pytest.raises(ValueError, match=r"unknown column name\(s\) \['usr'\]"):
        check_column_names({"usr": "u"})


@pytest.mark.parametrize(("fields", "message"), [
    ({"validation_file": Path("v.csv")}, "validation_file needs a test_file"),
    ({"columns": {"split": "fold"}, "test_file": Path("t.csv")}, "either as a split column or as separate files"),
    ({"columns": {"user_id": "u", "item_id": "u"}}, r"file column\(s\) \['u'\] are mapped to more than one name"),
    ({"columns": {"user_id": " "}}, "mapped to an empty name"),
    ({"columns": {"events": "e"}, "format": "csv"}, "'events' can only be mapped in the sessions format"),
    ({"format": "xml"}, "Input should be 'auto'"),
    ({"order": "random"}, "Input should be 'time' or 'file'"),
    ({"duplicates": "keep"}, "Input should be 'error' or 'drop'"),
])
def test_inconsistent_options_are_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ReadOptions.model_validate(fields)


def test_defaults_and_time_units() -> None:
    assert ReadOptions().is_default() and not ReadOptions(order="file").is_default()
    assert ReadOptions().unit("sessions") == "ms" and ReadOptions().unit("csv") == "s"
    assert ReadOptions(time_unit="s").unit("sessions") == "s"
