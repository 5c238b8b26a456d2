"""Preparation on a local Ray instance (2 CPUs): the single-machine files byte for byte, and the same errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from rankstack.cli import app
from rankstack.data.prepare import prepare_log
from rankstack.data.schema import EventSchema
from rankstack.distributed.backend import Backend
from rankstack.errors import DataValidationError

pytestmark = pytest.mark.ray
RAY2 = Backend("ray", 2)
DROP = EventSchema(duplicates="drop")


def log_frame(n: int, seed: int = 0) -> pl.DataFrame:
    """String ids, epoch-second times (many equal), impressions among the events, a few repeated rows."""
    rng = np.random.default_rng(seed)
    return pl.DataFrame({
        "user_id": [f"u{x}" for x in rng.integers(0, 40, n)],
        "item_id": [f"i{x}" for x in rng.integers(0, 25, n)],
        "timestamp": (1_700_000_000 + rng.integers(0, 50, n)).astype(str),
        "event": rng.choice(["click", "impression", "view"], n),
    })


def _with_repeats(frame: pl.DataFrame) -> pl.DataFrame:
    return pl.concat([frame, frame.slice(300, 5), frame.slice(10, 2)])


@pytest.mark.parametrize(("suffix", "shards"), [("csv", 3), ("parquet", 3), ("tsv", 1), ("csv", 60)])
def test_ray_writes_the_single_machine_bytes(ray_instance: Any, tmp_path: Path, suffix: str, shards: int) -> None:
    from rankstack.distributed.preprocess import prepare_log_on_ray

    frame, log = _with_repeats(log_frame(900)), tmp_path / f"log.{suffix}"
    if suffix == "parquet":
        frame.write_parquet(log, row_group_size=100)  # 10 row groups: several chunks
    else:
        frame.write_csv(log, separator="\t" if suffix == "tsv" else ",")
    local = prepare_log(log, tmp_path / "local", shards=shards, schema=DROP)
    sharded = prepare_log_on_ray(log, tmp_path / "ray", RAY2, shards=shards, schema=DROP)
    assert sharded["files"] == local["files"]  # every file's SHA-256: empty shards included when shards=60
    assert sharded["hash"] == local["hash"] and sharded["events"] == local["events"] < frame.height  # repeats dropped


@pytest.mark.parametrize(("row", "column", "value", "message"), [
    (700, "timestamp", "soon", "column 'timestamp', row 701: unparsable timestamp 'soon'"),
    (5, "event", "buy", "column 'event', row 6: unknown event type 'buy'"),
    (890, "user_id", "", "column 'user_id', row 891: null or empty id"),
])
def test_a_bad_row_is_reported_as_on_one_machine(ray_instance: Any, tmp_path: Path, row: int, column: str,
                                                  value: str, message: str) -> None:
    from rankstack.distributed.preprocess import prepare_log_on_ray

    frame = log_frame(900).with_columns(
        pl.when(pl.int_range(pl.len()) == row).then(pl.lit(value)).otherwise(column).alias(column),
        # a later check's bad row, earlier in the file: the earlier check still wins on both paths
        pl.when(pl.int_range(pl.len()) == 2).then(pl.lit("-1")).otherwise(pl.lit(None)).alias("position"),
    )
    frame.write_csv(tmp_path / "log.csv")
    errors = []
    for run in (lambda: prepare_log(tmp_path / "log.csv", tmp_path / "a", schema=DROP),
                lambda: prepare_log_on_ray(tmp_path / "log.csv", tmp_path / "b", RAY2, schema=DROP)):
        with pytest.raises(DataValidationError) as caught:
            run()
        errors.append(str(caught.value))
    assert errors[0] == errors[1]
    assert message in errors[1]


def test_a_repeated_row_under_duplicates_error_is_reported_as_on_one_machine(ray_instance: Any,
                                                                            tmp_path: Path) -> None:
    from rankstack.distributed.preprocess import prepare_log_on_ray

    _with_repeats(log_frame(900)).write_csv(tmp_path / "log.csv")
    errors = []
    for run in (lambda: prepare_log(tmp_path / "log.csv", tmp_path / "a"),
                lambda: prepare_log_on_ray(tmp_path / "log.csv", tmp_path / "b", RAY2)):
        with pytest.raises(DataValidationError, match=r"duplicate events: row \d+ repeats row \d+") as caught:
            run()
        errors.append(str(caught.value))
    assert errors[0] == errors[1]
    assert not (tmp_path / "b").exists()


def test_data_prepare_command_prints_the_same_hash_on_both_backends(ray_instance: Any, tmp_path: Path) -> None:
    log_frame(300).write_csv(tmp_path / "log.csv")
    runner = CliRunner()
    printed = []
    for extra in ([], ["--backend", "ray", "--workers", "2"]):
        result = runner.invoke(app, ["data", "prepare", str(tmp_path / "log.csv"), "--out",
                                     str(tmp_path / f"out{len(extra)}"), "--shards", "2", *extra])
        assert result.exit_code == 0, result.output
        printed.append(json.loads(result.stdout))
    assert printed[0]["hash"] == printed[1]["hash"] and printed[0]["events"] == printed[1]["events"]
