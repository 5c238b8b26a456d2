"""`rankstack train` with the multi-task ranker on a simulated log: artifact, propensities, truth-judged value."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from rankstack.cli import app
from rankstack.data.dataset import Dataset
from rankstack.data.loaders import load_dataset
from rankstack.data.splits import make_split
from rankstack.errors import ConfigError
from rankstack.experiments.evaluate_run import fit_and_eval_parts
from rankstack.experiments.pipeline_training import fit_stages
from rankstack.experiments.simulator_judging import judge_slates, logged_requests
from rankstack.pipeline.api import RecommendRequest
from rankstack.pipeline.config import validate_pipeline_config
from rankstack.pipeline.multitask_stage import MultiTaskStage
from rankstack.pipeline.pipeline import Pipeline
from rankstack.simulation import MarketplaceSimulator, load_simulation_config

from .conftest import config_dict, simulator_config_dict


@pytest.fixture(scope="module")
def artifact(sim_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example simulator pipeline trained through the CLI."""
    root = tmp_path_factory.mktemp("mt-cli")
    config = root / "simulator.yaml"
    config.write_text(yaml.safe_dump(simulator_config_dict(sim_folder)))
    out = root / "artifact"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the machine's cores are shared: one thread trains fastest
    try:
        result = CliRunner().invoke(app, ["train", str(config), "-o", str(out), "--no-register", "--json"])
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output
    return out


def test_train_writes_a_multitask_artifact_that_serves_slates_with_propensities(artifact: Path) -> None:
    manifest = json.loads((artifact / "manifest.json").read_text())
    assert manifest["components"]["ranker"] == "ranker"
    assert {"ranker/ranker.json", "ranker/weights.safetensors", "ranker/stage.json"} <= set(manifest["files"])
    assert manifest["stages"] == ["retrieval", "ranker", "value", "exploration"]
    held_out = manifest["metrics"]["ranker"]
    assert held_out["auc_click"] > 0.6 and held_out["ece_click"] < 0.05, held_out
    pipeline = Pipeline.load(artifact)
    assert isinstance(pipeline.parts.ranker, MultiTaskStage)
    assert pipeline.parts.ranker.context == ["device", "placement", "hour"]
    requests = [RecommendRequest(user_id=str(u), k=5, context={"device": "mobile", "placement": "home", "hour": 9})
                for u in range(5)]
    for response in pipeline.recommend(requests):
        assert len(response.items) == 5
        assert all(item.propensity is not None and 0 < item.propensity <= 1 for item in response.items)
        assert response.stages["ranker"] == "ran" and response.stages["value"] == "ran"
        assert response.fallback is None


def test_the_ranker_improves_the_true_expected_revenue_of_the_slate_over_retrieval_order(
        artifact: Path, sim_folder: Path) -> None:
    data = load_dataset(str(sim_folder))
    _, held_out = fit_and_eval_parts(make_split(data, "temporal"), "test")
    config = load_simulation_config(sim_folder)
    assert config is not None
    sim = MarketplaceSimulator(config)
    pipeline = Pipeline.load(artifact)
    greedy = pipeline.config.model_copy(
        update={"exploration": pipeline.config.exploration.model_copy(update={"policy": "greedy"})})
    requests = logged_requests(held_out, 400)
    ranked = judge_slates(pipeline.with_config(greedy), sim, data, requests, 5)
    retrieval = judge_slates(pipeline.with_config(greedy.model_copy(update={"ranker": None, "value": None})),
                             sim, data, requests, 5)
    assert ranked["ranker_ran"] == 1.0 and retrieval["ranker_ran"] == 0.0
    assert ranked["revenue_per_mille"] > 1.1 * retrieval["revenue_per_mille"], (ranked, retrieval)


def test_a_dataset_without_impressions_is_a_config_error(small_split: tuple[Dataset, Dataset]) -> None:
    config = validate_pipeline_config(config_dict(ranker={"kind": "multitask"}))
    with pytest.raises(ConfigError, match="multitask' needs impression logs"):
        fit_stages(config, small_split[0], lambda _m: None)


def test_order_by_must_read_predictions_the_objectives_give(sim_folder: Path) -> None:
    raw = simulator_config_dict(sim_folder)
    raw["ranker"]["model"]["objectives"] = ["click"]
    raw["value"] = None
    config = validate_pipeline_config(raw)
    data = load_dataset(str(sim_folder))
    with pytest.raises(ConfigError, match=r"order_by reads \['cvr'\]"):
        fit_stages(config, data, lambda _m: None)


def test_multitask_settings_are_checked_when_the_config_is_read(sim_folder: Path) -> None:
    raw = simulator_config_dict(sim_folder)
    raw["ranker"]["model"]["epochz"] = 3
    with pytest.raises(ConfigError, match=r"field 'ranker\.model': unknown field 'epochz'"):
        validate_pipeline_config(raw, "simulator.yaml")
    raw = simulator_config_dict(sim_folder)
    raw["ranker"]["history_share"], raw["ranker"]["validation_share"] = 0.9, 0.2
    with pytest.raises(ConfigError, match="must leave impressions to train on"):
        validate_pipeline_config(raw)


def test_the_trained_artifact_degrades_to_retrieval_order_when_the_ranker_fails(
        artifact: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: Any) -> dict[str, np.ndarray]:
        raise RuntimeError("ranker exploded")

    monkeypatch.setattr(MultiTaskStage, "predict", broken)
    pipeline = Pipeline.load(artifact)
    try:
        responses = pipeline.recommend([RecommendRequest(user_id=str(u), k=5) for u in range(3)])
    finally:
        pipeline.close()
    for response in responses:
        assert response.stages["ranker"] == "degraded" and response.fallback == "retrieval_order"
        assert len(response.items) == 5 and all(item.propensity is not None for item in response.items)
