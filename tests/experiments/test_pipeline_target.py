"""A trained pipeline as ``rankstack ope --target``: its greedy slates on a logged event file, the action axis extended
by items the log never shows, and IPS computed by hand from the pipeline's own answers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from rankstack.cli import app
from rankstack.data.dataset import Dataset
from rankstack.experiments.pipeline_target import extended_axis, greedy_slates, is_artifact, pipeline_action_dist
from rankstack.experiments.pipeline_training import fit_stages
from rankstack.ope.ope_inputs import load_log
from rankstack.pipeline.api import RecommendRequest
from rankstack.pipeline.artifact import save_artifact
from rankstack.pipeline.config import validate_pipeline_config
from rankstack.pipeline.pipeline import Pipeline

K, USERS, LOGGED_ITEMS = 3, 8, 16
runner = CliRunner(env={"COLUMNS": "300", "RANKSTACK_QUIET": "1"})


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A popularity pipeline over 24 items; item i was clicked by 24 − i users' worth of history."""
    rows = [(f"user{u}", f"item{i}", 1_750_000_000 + 60 * (u * 24 + i)) for u in range(30) for i in range(24)
            if (u + i) % 24 < 24 - i]
    history = Dataset.from_events(pl.DataFrame(rows, schema=["user_id", "item_id", "timestamp"], orient="row"),
                                  name="history")
    raw = {"name": "h", "data": {"name": "history"}, "sources": [{"name": "popular", "k": 12}], "merge": {"k": 12},
           "exploration": {"policy": "epsilon_greedy", "epsilon": 0.5, "pool": 6}}
    config = validate_pipeline_config(raw)
    parts = fit_stages(config, history, lambda _m: None)
    folder = tmp_path_factory.mktemp("art") / "h-0001"
    manifest = {"version": folder.name, "name": "h", "created_at": "2026-01-01T00:00:00+00:00",
                "config": config.model_dump(mode="json"), "data": {"name": "history"}, "metrics": {"pipeline": {}}}
    return save_artifact(parts, manifest, folder)


@pytest.fixture
def event_log(tmp_path: Path) -> Path:
    """Uniform slates of K distinct items among items 8..23 (per-slot propensity 1/16), clicks on even items; the
    pipeline's most popular items (0..7) are never shown."""
    rng = np.random.default_rng(0)
    rows, clicks = [], []
    for r in range(120):
        user = f"user{r % USERS}" if r % 10 else "stranger"  # an unknown user gets the popularity fallback
        for slot, item in enumerate(rng.choice(LOGGED_ITEMS, size=K, replace=False)):
            row = {"user_id": user, "item_id": f"item{item + 24 - LOGGED_ITEMS}", "event": "impression",
                   "request_id": f"r{r}", "position": slot, "propensity": 1 / LOGGED_ITEMS}
            rows.append(row)
            if item % 2 == 0 and rng.random() < 0.6:
                clicks.append({**row, "event": "click"})
    path = tmp_path / "log.csv"
    pl.DataFrame(rows + clicks).write_csv(path)
    return path


def test_action_dist_and_axis(artifact: Path, event_log: Path) -> None:
    assert is_artifact(str(artifact)) and not is_artifact(str(event_log.parent))
    log = load_log(str(event_log)).log
    pipeline = Pipeline.load(artifact)
    slates = greedy_slates(pipeline, log)
    pipeline.close()
    assert len(slates) == 120 and all(len(s) == K for s in slates.values())
    with pytest.raises(ValueError, match="not on the log's action axis"):
        pipeline_action_dist(log, slates)
    axis = extended_axis(log.items, slates)
    assert len(axis) > len(log.items) and list(axis[: len(log.items)]) == list(log.items)
    wider = load_log(str(event_log), items=axis).log
    dist, about = pipeline_action_dist(wider, slates)
    assert dist.shape == (wider.n_rounds, wider.n_actions, K) and np.allclose(dist.sum(axis=1), 1.0)
    assert 0 < about["never_logged_share"] < 1 and about["requests"] == 120


def test_ope_cli_estimates_a_pipeline(artifact: Path, event_log: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["ope", "--log", str(event_log), "--target", str(artifact), "--bootstrap", "3",
                                 "--reward-model", "none", "--json", "--slate", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    # IPS by hand: the pipeline's greedy answer for each request, w = 16 on a match at the logged slot
    frame = pl.read_csv(event_log)
    shown = frame.filter(pl.col("event") == "impression")
    clicked = set(frame.filter(pl.col("event") == "click").select("request_id", "item_id").iter_rows())
    loaded = Pipeline.load(artifact)
    pipeline = loaded.with_config(loaded.config.model_copy(
        update={"exploration": loaded.config.exploration.model_copy(update={"policy": "greedy"})}))
    loaded.close()
    first = shown.group_by("request_id", maintain_order=True).first()
    answers = {r.request_id: [i.item_id for i in r.items] for r in pipeline.recommend(
        [RecommendRequest(user_id=str(u), k=K, request_id=str(q)) for q, u in
         zip(first["request_id"], first["user_id"], strict=True)], stage_deadlines=False)}
    pipeline.close()
    values = [LOGGED_ITEMS * (answers[q][p] == i) * ((q, i) in clicked)  # int(True) = 1
              for q, i, p in zip(shown["request_id"], shown["item_id"], shown["position"], strict=True)]
    assert np.mean(values) > 0  # some logged slots agree with the pipeline and were clicked
    assert payload["estimators"]["ips"]["estimate"] == pytest.approx(np.mean(values))
    assert payload["ground_truth"] is None and payload["pipeline"]["requests"] == 120
    # every request fills its 3 slots: the slate's independent IPS is K × the per-impression IPS
    slate = payload["slate"]
    assert slate["requests"] == 120 and slate["incomplete_requests"] == 0
    assert slate["estimators"]["independent IPS"]["estimate"] == pytest.approx(K * np.mean(values))


def test_ope_cli_slate_estimators_for_a_uniform_target(event_log: Path, tmp_path: Path) -> None:
    """Uniform target on a uniform log: every weight is 1, so IIPS and PI give the mean slate reward."""
    result = runner.invoke(app, ["ope", "--log", str(event_log), "--target", "uniform", "--logger", "uniform",
                                 "--bootstrap", "3", "--reward-model", "none", "--json", "--slate", "--out",
                                 str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    slate = json.loads(result.stdout)["slate"]["estimators"]
    frame = pl.read_csv(event_log)
    mean = frame.filter(pl.col("event") == "click").height / 120
    assert slate["independent IPS"]["estimate"] == pytest.approx(mean)
    assert slate["PI"]["estimate"] == pytest.approx(mean)
