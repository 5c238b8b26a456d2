"""The single-machine preparation: id maps, user shards, time-ordered sequences, a manifest of hashes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from rankstack.data.idmap import IdMap
from rankstack.data.prepare import CHECKS, RowError, first_error, prepare_log
from rankstack.data.schema import EventSchema, validate_events
from rankstack.errors import DataValidationError


def log_frame(n: int = 400, seed: int = 0) -> pl.DataFrame:
    """A log with string ids, epoch-second times (many equal), impressions among the events."""
    rng = np.random.default_rng(seed)
    return pl.DataFrame({
        "user_id": [f"u{x}" for x in rng.integers(0, 40, n)],
        "item_id": [f"i{x}" for x in rng.integers(0, 25, n)],
        "timestamp": (1_700_000_000 + rng.integers(0, 50, n)).astype(str),
        "event": rng.choice(["click", "impression", "view"], n),
    })


def test_shards_hold_contiguous_users_sorted_by_time_and_the_maps_are_sorted(tmp_path: Path) -> None:
    frame = log_frame()
    frame.write_csv(tmp_path / "log.csv")
    manifest = prepare_log(tmp_path / "log.csv", tmp_path / "out", shards=3, schema=EventSchema(duplicates="drop"))
    out = tmp_path / "out"
    users = IdMap.load(out / "user_map.parquet")
    assert users.external_.to_list() == sorted(set(frame["user_id"]))
    events = validate_events(frame, source="x", schema=EventSchema(duplicates="drop"))
    assert manifest["events"] == events.height and manifest["users"] == len(users) and manifest["shards"] == 3
    parts = [pl.read_parquet(out / "interactions" / f"part-{i:05d}.parquet") for i in range(3)]
    assert sum(p.height for p in parts) == events.height
    for i, part in enumerate(parts):
        assert ((part["user_id"] * 3) // len(users) == i).all()  # contiguous user ranges
        assert part.equals(part.sort(["user_id", "timestamp"], maintain_order=True, nulls_last=True))
    sequences = pl.concat([pl.read_parquet(out / "sequences" / f"part-{i:05d}.parquet") for i in range(3)])
    first = sequences.row(0, named=True)
    user_events = pl.concat(parts).filter((pl.col("user_id") == first["user_id"]) & (pl.col("event") != "impression"))
    assert first["items"] == user_events["item_id"].to_list()  # positive events only, in time order
    assert set(manifest["files"]) == {"user_map.parquet", "item_map.parquet",
                                      *(f"{d}/part-{i:05d}.parquet" for d in ("interactions", "sequences")
                                        for i in range(3))}
    assert json.loads((out / "manifest.json").read_text())["hash"] == manifest["hash"]


def test_the_same_log_gives_the_same_bytes_and_another_log_does_not(tmp_path: Path) -> None:
    log_frame().write_csv(tmp_path / "a.csv")
    log_frame(seed=1).write_csv(tmp_path / "b.csv")
    schema = EventSchema(duplicates="drop")
    first = prepare_log(tmp_path / "a.csv", tmp_path / "1", shards=2, schema=schema)
    again = prepare_log(tmp_path / "a.csv", tmp_path / "1", shards=2, schema=schema)  # over its own output
    assert first["hash"] == again["hash"]
    assert prepare_log(tmp_path / "b.csv", tmp_path / "2", shards=2, schema=schema)["hash"] != first["hash"]


def test_a_bad_row_is_the_error_validation_raises(tmp_path: Path) -> None:
    frame = log_frame().with_columns(
        pl.when(pl.int_range(pl.len()) == 123).then(pl.lit("yesterday")).otherwise("timestamp").alias("timestamp"))
    frame.write_csv(tmp_path / "log.csv")
    with pytest.raises(DataValidationError, match=r"log.csv, column 'timestamp', row 124: unparsable timestamp"):
        prepare_log(tmp_path / "log.csv", tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing written


def test_a_folder_with_other_files_is_not_overwritten(tmp_path: Path) -> None:
    log_frame().write_csv(tmp_path / "log.csv")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    with pytest.raises(DataValidationError, match=r"not empty and holds no manifest\.json"):
        prepare_log(tmp_path / "log.csv", tmp_path / "out", schema=EventSchema(duplicates="drop"))


@pytest.mark.parametrize(("errors", "expected"), [
    ([(0, RowError("timestamp", 9, "timestamp", "m")), (100, RowError("user_id", 3, "user_id", "m"))], 100),
    ([(0, RowError("event", 9, "event", "m")), (100, RowError("event", 3, "event", "m"))], 0),
    ([(50, RowError("position range", 1, "position", "m")), (0, RowError("value", 40, "value", "m"))], 0),
])
def test_the_earliest_check_wins_then_the_first_row(errors: list[tuple[int, RowError]], expected: int) -> None:
    found = first_error(errors)
    assert found is not None and found[0] == expected
    assert first_error([]) is None
    assert all(e.check in CHECKS for _, e in errors)
