"""`rankstack simulate` and `rankstack evaluate --model multitask` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
import torch
from typer.testing import CliRunner

from rankstack.cli import app
from rankstack.data.loaders import load_dataset

runner = CliRunner()


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim")
    result = runner.invoke(app, ["simulate", "--out", str(out), "--users", "300", "--items", "30",
                                 "--impressions", "20000", "--seed", "5", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["impressions"] == 20_000 and 0 < summary["ctr"] < 0.5
    return out


def test_simulate_writes_a_loadable_dataset_and_truth(sim_dir: Path) -> None:
    data = load_dataset(sim_dir)
    assert data.events.filter(pl.col("event") == "impression").height == 20_000
    assert {"device", "placement", "hour"} <= set(data.events.columns)
    truth = pl.read_parquet(sim_dir / "truth.parquet")
    assert truth.height == 20_000
    assert truth.get_column("p_click").is_between(0, 1).all()
    assert (sim_dir / "simulation.json").is_file()


def test_evaluate_multitask_prints_the_headline_metrics(sim_dir: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    result = runner.invoke(app, [
        "evaluate", "--dataset", str(sim_dir), "--model", "multitask", "--json", "--runs-dir", str(tmp_path),
        "--set", "epochs=1", "--set", "mlp_dims=[16]", "--set", "expert_dims=[8]", "--set", "slate_requests=200",
        "--set", "n_candidates=20", "--device", "cpu",
    ])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    for key in ("auc_click", "auc_conversion", "oracle_auc_click", "oracle_auc_conversion", "ece_click",
                "ece_conversion"):
        assert isinstance(record[key], float), key
        assert record[key] == record["metrics"][key]
    assert 0.5 < record["oracle_auc_click"] <= 1.0
    assert record["dataset"]["split"] == "temporal"
    m = record["metrics"]
    assert m["oracle_value_ranked_revenue_per_mille"] >= m["random_revenue_per_mille"]
    assert {"value_ranked_revenue_per_mille", "click_ranked_clicks_per_mille", "value_ranked_ndcg"} <= set(m)
    assert Path(record["result_path"]).is_file()
    # one epoch of at most one: it ran out of epochs, and its one validation loss is also its best
    assert (record["epochs_run"], record["best_epoch"], record["stopped_by"]) == (1, 1, "epochs")
    assert record["training"]["metric"] == "validation_loss" and len(record["training"]["curve"]) == 1
    assert "<h2>Training</h2>" in Path(record["report_path"]).read_text()


def test_simulate_rejects_bad_settings(tmp_path: Path) -> None:
    result = runner.invoke(app, ["simulate", "--out", str(tmp_path), "--items", "3", "--slate-size", "5"])
    assert result.exit_code == 2
    assert "slate_size" in result.output
    result = runner.invoke(app, ["simulate", "--out", str(tmp_path), "--policy", "greedy"])
    assert result.exit_code == 2 and "policy" in result.output


def test_evaluate_multitask_rejects_unknown_settings(sim_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["evaluate", "--dataset", str(sim_dir), "--model", "multitask", "--set", "bogus=1",
                                 "--runs-dir", str(tmp_path)])
    assert result.exit_code == 2 and "bogus" in result.output


def test_evaluate_multitask_refuses_a_non_temporal_split(sim_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["evaluate", "--dataset", str(sim_dir), "--model", "multitask", "--split",
                                 "leave_one_out", "--runs-dir", str(tmp_path)])
    assert result.exit_code == 2 and "temporal" in result.output
