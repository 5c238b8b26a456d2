"""`rankstack train` and `rankstack models` end to end through the Typer app."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import yaml
from typer.testing import CliRunner

from rankstack.cli import app
from rankstack.pipeline.api import RecommendRequest
from rankstack.pipeline.pipeline import Pipeline

runner = CliRunner()


def pipeline_file(tmp_path: Path) -> Path:
    """A small two-source pipeline over a timed event log written next to it."""
    rng = np.random.default_rng(0)
    rows = [(f"u{u}", f"i{i}", 1_700_000_000 + 60 * t)
            for u in range(50) for t, i in enumerate(rng.choice(30, size=7, replace=False))]
    log = tmp_path / "events.csv"
    pl.DataFrame(rows, schema=["user_id", "item_id", "timestamp"], orient="row").write_csv(log)
    config = {"name": "tiny", "data": {"name": str(log)},
              "sources": [{"name": "popular", "k": 10, "quota": 3}, {"name": "itemknn", "k": 20}],
              "merge": {"k": 20}, "exploration": {"policy": "epsilon_greedy", "epsilon": 0.1, "pool": 10},
              "evaluation": {"ks": [5], "funnel_ks": [10, 20]}}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_train_writes_registers_and_the_registry_promotes_and_rolls_back(tmp_path: Path) -> None:
    config, reg = pipeline_file(tmp_path), tmp_path / "registry"
    outs = []
    for n in (1, 2):
        out = tmp_path / f"art{n}"
        result = runner.invoke(app, ["train", str(config), "-o", str(out), "--registry", str(reg), "--json"])
        assert result.exit_code == 0, result.output
        record = json.loads(result.stdout)  # the record alone: the training notes went to stderr
        assert record["registered"]["active"] is (n == 1) and "popular" in result.stderr
        assert set(record["metrics"]) == {"sources", "pipeline", "funnel"}
        outs.append(record["version"])
    manifest = json.loads((tmp_path / "art1" / "manifest.json").read_text())
    assert manifest["version"] == outs[0] and manifest["code_version"]["rankstack"]
    (resp,) = Pipeline.load(tmp_path / "art2").recommend([RecommendRequest(user_id="u1", k=3)])
    assert len(resp.items) == 3 and all(0 < (i.propensity or 0) <= 1 for i in resp.items)

    listing = json.loads(runner.invoke(app, ["models", "list", "--registry", str(reg), "--json"]).stdout)
    assert [v["version"] for v in listing["versions"]] == outs and listing["versions"][0]["active"]
    assert runner.invoke(app, ["models", "promote", outs[1], "--registry", str(reg)]).exit_code == 0
    table = runner.invoke(app, ["models", "list", "--registry", str(reg)])
    assert table.exit_code == 0 and outs[1] in table.output
    rolled = runner.invoke(app, ["models", "rollback", "--registry", str(reg)])
    assert rolled.exit_code == 0 and outs[0] in rolled.output
    again = runner.invoke(app, ["models", "rollback", "--registry", str(reg)])
    assert again.exit_code == 2 and "nothing to roll back" in again.output


def test_models_errors_are_messages_not_tracebacks(tmp_path: Path) -> None:
    reg = str(tmp_path / "empty")
    listed = runner.invoke(app, ["models", "list", "--registry", reg])
    assert listed.exit_code == 0 and "No versions registered" in listed.output
    promoted = runner.invoke(app, ["models", "promote", "v404", "--registry", reg])
    assert promoted.exit_code == 2 and "unknown version 'v404'" in promoted.output
    assert "Traceback" not in promoted.output


def test_train_refuses_a_bad_config_and_an_occupied_output(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("sources: [{name: nope}]\n")
    result = runner.invoke(app, ["train", str(bad), "-o", str(tmp_path / "a"), "--no-register"])
    assert result.exit_code == 2 and "unknown source 'nope'" in " ".join(result.output.split())
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "x").write_text("keep me")
    result = runner.invoke(app, ["train", str(pipeline_file(tmp_path)), "-o", str(occupied), "--no-register"])
    assert result.exit_code == 2 and (occupied / "x").read_text() == "keep me"
