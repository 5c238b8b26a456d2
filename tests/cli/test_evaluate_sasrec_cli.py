"""`rankstack evaluate --model sasrec` runs end to end on the bundled data (tiny settings)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from rankstack.cli import app


def test_evaluate_sasrec_on_bundled_data(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, [
        "evaluate", "--dataset", "ml-latest-small", "--model", "sasrec", "--k", "10", "--json",
        "--set", "epochs=1", "--set", "max_len=10", "--set", "hidden_dim=8", "--set", "device=cpu",
        "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)  # stderr has the warning: one epoch, still improving
    assert record["model"]["name"] == "sasrec" and "raise epochs" in result.stderr
    assert record["dataset"]["split"] == "leave_one_out"
    assert 0.0 <= record["metrics"]["ndcg@10"] <= 1.0
    assert Path(record["result_path"]).exists()


def test_evaluate_sasrec_rejects_unknown_settings(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["evaluate", "--dataset", "ml-latest-small", "--model", "sasrec",
                                      "--set", "layers=3", "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code != 0
    assert "layers" in result.output
