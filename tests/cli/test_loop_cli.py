"""``rankstack loop``: a tiny run end to end (JSON summary, result.json, plot, table) and bad options."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from rankstack.cli import app

runner = CliRunner(env={"COLUMNS": "300", "RANKSTACK_QUIET": "1"})
TINY = ["--users", "60", "--items", "25", "--history", "3000", "--epochs", "1", "--rounds", "40", "--deploy-rounds",
        "30", "--bootstrap", "20", "--pool", "6"]


def test_tiny_loop_writes_its_outputs(tmp_path) -> None:
    out = tmp_path / "run"
    result = runner.invoke(app, ["loop", *TINY, "--seeds", "1", "--candidate", "2,0", "--json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["settings"]["candidate_click_weights"] == [2.0, 0.0]
    head = payload["summary"]["headline"]
    assert head["estimator"] == "independent DR" and head["seeds"] == 1
    assert payload["summary"]["tuning"]["seeds"] == 1
    saved = json.loads((out / "result.json").read_text())
    assert len(saved["seeds"]) == 1 and saved["simulator"]["n_items"] == 25
    assert (out / "estimates.png").stat().st_size > 1000
    assert "independent IPS" in (out / "table.md").read_text()


@pytest.mark.parametrize(("args", "message"), [
    (["--estimator", "pi"], "--estimator: unknown 'pi'"),
    (["--metric", "ctr"], "--metric must be clicks or revenue"),
    (["--candidate", "a,b"], "--candidate: expected comma-separated numbers"),
    (["--candidate", "1,1"], "distinct non-negative"),
    (["--pool", "5"], "must exceed the slate"),
    (["--seeds", "0"], "seeds must be at least 1"),
    (["--epsilon", "1.5"], "epsilon must lie in"),
    (["--items", "1"], "--n_items"),
    (["--epochs", "0"], "--epochs must be at least 1"),
])
def test_bad_options_exit_2(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["loop", *args])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
