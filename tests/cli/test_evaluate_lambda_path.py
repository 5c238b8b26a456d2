"""`rankstack evaluate --model ease --eval-on validation --set l2=a,b,c` through the Typer app."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
from typer.testing import CliRunner

from rankstack.cli import app

runner = CliRunner(env={"COLUMNS": "200"})


def _log(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    rows = [(f"u{u}", f"i{i}", 1_700_000_000 + 60 * t) for u in range(40)
            for t, i in enumerate(rng.choice(30, size=8, replace=False))]
    path = tmp_path / "events.csv"
    pl.DataFrame(rows, schema=["user_id", "item_id", "timestamp"], orient="row").write_csv(path)
    return path


def test_lambda_list_reports_each_lambda_and_names_the_best(tmp_path: Path) -> None:
    argv = ["evaluate", "--dataset", str(_log(tmp_path)), "--model", "ease", "--eval-on", "validation",
            "--set", "l2=1,30,900", "--set", "device=cpu", "--k", "5", "--runs-dir", str(tmp_path / "runs")]
    result = runner.invoke(app, [*argv, "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert [step["l2"] for step in record["lambda_path"]] == [1.0, 30.0, 900.0]
    assert record["best"]["l2"] in (1.0, 30.0, 900.0) and record["best"]["selected_by"] == "ndcg@5"
    assert json.loads(Path(record["result_path"]).read_text())["best"] == record["best"]
    table = runner.invoke(app, argv)
    assert table.exit_code == 0, table.output
    assert "EASE λ path" in table.output and f"best λ = {record['best']['l2']:g}" in table.output
    assert f"--set l2={record['best']['l2']:g}" in table.output
