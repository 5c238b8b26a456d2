"""``rankstack ope``: JSON in the contract's shape, the report files, the service store path and bad options."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from rankstack.cli import app
from rankstack.data.loaders import find_dataset
from rankstack.errors import DatasetNotFoundError

runner = CliRunner(env={"COLUMNS": "300", "RANKSTACK_QUIET": "1"})


@pytest.fixture
def uniform_log(tmp_path):
    """300 impressions of a uniform policy over 4 items and 2 slots (per-slot propensity 1/4), clicks on item 3."""
    rng = np.random.default_rng(0)
    n = 300
    item = rng.integers(0, 4, n)
    clicked = rng.random(n) < np.where(item == 3, 0.5, 0.1)
    rows = {"user_id": [f"u{i}" for i in range(n)], "item_id": [f"i{x}" for x in item],
            "event": ["impression"] * n, "request_id": [f"r{i}" for i in range(n)],
            "position": [i % 2 for i in range(n)], "propensity": [0.25] * n}
    impressions = pl.DataFrame(rows)
    clicks = impressions.filter(pl.Series(clicked)).with_columns(pl.lit("click").alias("event"))
    path = tmp_path / "log.csv"
    pl.concat([impressions, clicks]).write_csv(path)
    return path, float(clicked.mean())


def test_json_contract_and_report(uniform_log, tmp_path):
    path, mean = uniform_log
    out = tmp_path / "run"
    result = runner.invoke(app, ["ope", "--log", str(path), "--target", "uniform", "--bootstrap", "3", "--json",
                                 "--reward-c", "0.5", "--folds", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["ground_truth"] is None
    assert set(payload["estimators"]) == {"dm", "ips", "snips", "dr", "sndr", "switch_dr", "dros"}
    ips = payload["estimators"]["ips"]
    assert ips["estimate"] == pytest.approx(mean)  # the logging policy on its own log: every weight is 1
    assert ips["ci"][0] <= ips["estimate"] <= ips["ci"][1]
    assert json.loads((out / "result.json").read_text())["log"] == str(path)
    assert payload["reward_model"]["name"] == "logistic" and payload["reward_model"]["c"] == 0.5
    assert "<img" in (out / "report.html").read_text()


def test_table_and_several_targets_from_the_service_store(tmp_path):
    from rankstack.events import Event
    from rankstack.state.sqlite import SQLiteStateStore

    store = SQLiteStateStore(tmp_path / "state.db")
    store.add_events([Event(event_id=f"e{r}", user_id="u", item_id=f"i{r % 2}", event="impression",
                            request_id=f"r{r}", propensity=0.5) for r in range(40)]
                     + [Event(event_id="c", user_id="u", item_id="i0", event="click", request_id="r0")])
    store.close()
    result = runner.invoke(app, ["ope", "--log", str(tmp_path / "state.db"), "--target", "uniform", "--target",
                                 "uniform", "--reward-model", "none", "--bootstrap", "3", "--out",
                                 str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert "ips" in result.stdout and "0.02500" in result.stdout


def test_mips_on_a_folder_log_with_item_features_and_a_declared_logger(uniform_log, tmp_path):
    path, mean = uniform_log
    folder = tmp_path / "folder"
    folder.mkdir()
    pl.read_csv(path).write_parquet(folder / "events.parquet")
    pl.DataFrame({"item_id": ["i0", "i1", "i2", "i3"], "genre": ["a", "a", "b", "b"]}).write_parquet(
        folder / "items.parquet")
    args = ["ope", "--log", str(folder), "--target", "uniform", "--bootstrap", "3", "--reward-model", "none",
            "--json", "--out", str(tmp_path / "o")]
    without = json.loads(runner.invoke(app, args).stdout)
    assert set(without["estimators"]) == {"ips", "snips"}
    result = runner.invoke(app, [*args, "--logger", "uniform", "--embedding", "genre"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["estimators"]["mips"]["estimate"] == pytest.approx(mean)  # the logger itself: every w^e is 1
    assert payload["support"]["uncovered_target_mass"] == 0.0


@pytest.mark.parametrize(("args", "message"), [
    (["--bootstrap", "1"], "--bootstrap must be at least 2"),
    (["--target", "bogus"], "unknown policy 'bogus'"),
    (["--logger", "bts"], "unknown policy 'bts'"),
    (["--estimators", "ipw"], "--estimators: unknown ['ipw']"),
    (["--reward-model", "forest"], "--reward-model must be logistic, multitask or none"),
    (["--alpha", "2"], "--alpha must lie in (0, 1)"),
    (["--reward-c", "zero"], "--reward-c must be a positive number or auto"),
    (["--embedding", "colour"], "item feature 'colour' not found"),
])
def test_bad_options_exit_2(uniform_log, tmp_path, args, message):
    path, _ = uniform_log
    base = ["ope", "--log", str(path), "--target", "uniform", "--bootstrap", "2", "--out", str(tmp_path / "o")]
    result = runner.invoke(app, base + args)
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())


@pytest.mark.slow
def test_open_bandit_contract_shape():
    try:
        find_dataset("open-bandit")
    except DatasetNotFoundError:
        pytest.skip("the Open Bandit Dataset sample is not available")
    result = runner.invoke(app, ["ope", "--log", "open-bandit", "--target", "open-bandit-bts", "--bootstrap", "2",
                                 "--n-sim", "2000", "--seed", "0", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["ground_truth"] == pytest.approx(42 / 10_000)
    for name in ("dm", "ips", "snips", "dr", "sndr", "switch_dr", "dros", "mips", "snmips"):
        row = payload["estimators"][name]
        assert {"estimate", "relative_error_mean", "relative_error_std", "ci"} <= set(row)
