"""EASE's λ path as an experiment: grid parsing, one record with every λ scored on validation, the best named."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from rankstack.data.dataset import Dataset
from rankstack.errors import ConfigError
from rankstack.experiments.evaluate_run import run_experiment
from rankstack.experiments.lambda_path import parse_l2_grid, run_lambda_path


@pytest.mark.parametrize(("value", "expected"), [
    ("100,200,500", [100.0, 200.0, 500.0]), ([1, 2.5], [1.0, 2.5]), (200, None), ("200", None), (2.5, None),
])
def test_parse_l2_grid(value: object, expected: list[float] | None) -> None:
    assert parse_l2_grid(value) == expected


@pytest.mark.parametrize(("value", "message"), [
    ("100,x", "expected numbers > 0"), ("100,0", "every λ must be > 0"), ("5,-1", "every λ must be > 0"),
    ("3,4,3", "λ=3 is listed twice"), ([], "every λ must be > 0"),
])
def test_parse_l2_grid_rejects(value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_l2_grid(value)


def _timed_log() -> Dataset:
    rng = np.random.default_rng(0)
    rows = [(u, int(i), 1_700_000_000 + 60 * t) for u in range(40)
            for t, i in enumerate(rng.choice(30, size=8, replace=False))]
    events = pl.DataFrame(rows, schema=["user_id", "item_id", "timestamp"], orient="row")
    return Dataset.from_events(events.with_columns(pl.from_epoch("timestamp")), name="tiny-log")


def test_every_lambda_is_scored_on_validation_and_the_best_is_named() -> None:
    data = _timed_log()
    record = run_lambda_path(data, "leave_one_out", {"device": "cpu"}, [0.5, 50.0, 5000.0], ks=(5,), device="cpu")
    assert [step["l2"] for step in record["lambda_path"]] == [0.5, 50.0, 5000.0]
    assert record["dataset"]["evaluated_on"] == "validation"
    best = max(record["lambda_path"], key=lambda step: step["metrics"]["ndcg@5"])
    assert record["best"]["l2"] == best["l2"] and record["best"]["selected_by"] == "ndcg@5"
    assert record["metrics"] == best["metrics"] and record["model"]["config"]["l2"] == best["l2"]
    for step in record["lambda_path"]:  # each λ's metrics are those of a single fit with that λ
        single = run_experiment(data, "leave_one_out", "ease", {"l2": step["l2"], "device": "cpu"}, ks=(5,),
                                eval_on="validation", device="cpu")
        assert step["metrics"] == pytest.approx(single["metrics"])
