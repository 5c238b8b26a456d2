"""``evaluate-recs`` on small CSV / Parquet files: JSON values by hand, and clear errors on bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import polars as pl
import pytest
import typer
from typer.testing import CliRunner

from rankstack.cli.evaluate_recs import evaluate_recs

runner = CliRunner()
app = typer.Typer()
app.command()(evaluate_recs)

L3 = 1 / math.log2(3)
TRAIN = "user_id,item_id\nu1,a\nu1,b\nu2,c\nu2,e\nu3,a\n"
TEST = "user_id,item_id\nu1,c\nu1,d\nu2,a\nu4,b\n"
# u1: [x, c, d] vs {c, d}; u2: [b] vs {a}; u3 has no test items (ignored); u4 has no recs (scores 0)
RECS = "user_id,item_id,rank\nu1,c,2\nu1,x,1\nu1,d,3\nu2,b,1\nu3,a,1\n"
EXPECTED = {
    "recall@2": 0.5 / 3,
    "precision@2": 0.5 / 3,
    "hr@2": 1 / 3,
    "mrr@2": 0.5 / 3,
    "ndcg@2": L3 / (1 + L3) / 3,
    "map@2": 0.25 / 3,
    "coverage@2": 3 / 4,  # {x, c, b} over train items {a, b, c, e}
    "novelty@2": ((2 + math.log2(3)) / 2 + math.log2(3)) / 3,  # p(x) = 1/(3+1), p(c) = p(b) = 1/3
    "recall@3": 1 / 3,
    "precision@3": (2 / 3) / 3,
    "hr@3": 1 / 3,
    "mrr@3": 0.5 / 3,
    "ndcg@3": (L3 + 0.5) / (1 + L3) / 3,
    "map@3": (0.5 + 2 / 3) / 2 / 3,
    "coverage@3": 4 / 4,
    "users_evaluated": 3,
}


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def invoke(train: Path, test: Path, recs: Path, *extra: str) -> object:
    args = ["--train", str(train), "--test", str(test), "--recs", str(recs), *extra]
    return runner.invoke(app, args)


def squash(text: str) -> str:
    """Letters and digits only, so Rich's wrapping and boxes do not break substring checks."""
    return "".join(ch for ch in text.lower() if ch.isalnum())


def test_json_matches_hand_computation(tmp_path: Path) -> None:
    files = [write(tmp_path, f"{n}.csv", t) for n, t in (("train", TRAIN), ("test", TEST), ("recs", RECS))]
    result = invoke(*files, "--k", "3,2", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert set(out) >= set(EXPECTED)
    for key, value in EXPECTED.items():
        assert out[key] == pytest.approx(value), key


def test_parquet_with_integer_ids_and_table_output(tmp_path: Path) -> None:
    ids = {"u1": 1, "u2": 2, "u3": 3, "u4": 4, "a": 10, "b": 11, "c": 12, "d": 13, "e": 14, "x": 15}
    paths = []
    for name, text in (("train", TRAIN), ("test", TEST), ("recs", RECS)):
        frame = pl.read_csv(text.encode()).with_columns(
            pl.col("user_id", "item_id").replace_strict(ids, return_dtype=pl.Int64)
        )
        path = tmp_path / f"{name}.parquet"
        if name == "test":  # mix formats: the test file stays CSV
            path = tmp_path / "test.csv"
            frame.write_csv(path)
        else:
            frame.write_parquet(path)
        paths.append(path)
    out = json.loads(invoke(*paths, "--k", "2,3", "--json").stdout)
    for key, value in EXPECTED.items():
        assert out[key] == pytest.approx(value), key
    table = invoke(*paths)
    assert table.exit_code == 0, table.output
    assert "ndcg" in table.stdout and "@20" in table.stdout and "coverage" in table.stdout


BAD_CASES = {
    "missing file": ("recs", None, "recs file", "file not found"),
    "missing column": ("recs", "user_id,item_id\nu1,a\n", "recs file", "missing column(s) ['rank']"),
    "null user id": ("test", "user_id,item_id\nu1,a\n,b\n", "column 'user_id', row 2", "null or empty id"),
    "null item id": ("train", "user_id,item_id\nu1,\n", "column 'item_id', row 1", "null or empty id"),
    "fractional rank": ("recs", "user_id,item_id,rank\nu1,a,1\nu1,b,1.5\n", "row 2", "must be an integer"),
    "text rank": ("recs", "user_id,item_id,rank\nu1,a,1\nu1,b,two\n", "row 2", "must be an integer"),
    "zero rank": ("recs", "user_id,item_id,rank\nu1,a,0\n", "column 'rank', row 1", "rank must be >= 1"),
    "missing rank": ("recs", "user_id,item_id,rank\nu1,a,1\nu1,b,\n", "row 2", "missing rank"),
    "duplicate rank": (
        "recs", "user_id,item_id,rank\nu1,a,1\nu2,a,1\nu1,b,1\n", "row 3", "duplicate rank 1 for user 'u1'"
    ),
    "empty test": ("test", "user_id,item_id\n", "test file", "no rows"),
}


@pytest.mark.parametrize("case", list(BAD_CASES), ids=list(BAD_CASES))
def test_bad_files_give_clear_errors(tmp_path: Path, case: str) -> None:
    role, text, where, message = BAD_CASES[case]
    files = {"train": TRAIN, "test": TEST, "recs": RECS}
    paths = {name: write(tmp_path, f"{name}.csv", body) for name, body in files.items()}
    paths[role] = tmp_path / "bad.csv"
    if text is not None:
        paths[role].write_text(text)
    result = invoke(paths["train"], paths["test"], paths["recs"], "--json")
    assert result.exit_code == 2, result.output
    assert squash(where) in squash(result.output) and squash(message) in squash(result.output)
    assert str(paths[role].name) in result.output


@pytest.mark.parametrize("k", ["10,x", "0", "", "5,,10", "-3"])
def test_bad_k_is_rejected(tmp_path: Path, k: str) -> None:
    files = [write(tmp_path, f"{n}.csv", t) for n, t in (("train", TRAIN), ("test", TEST), ("recs", RECS))]
    result = invoke(*files, "--k", k)
    assert result.exit_code == 2
    assert "--k" in result.output
