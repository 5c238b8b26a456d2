"""Loading an artifact written by ``rankstack train`` imports inference code only: in a fresh interpreter, no
training loop, evaluator, experiment, simulation, tuning or CLI module is imported by loading it and serving one
request."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from rankstack.cli import app

from .conftest import simulator_config_dict, small_events

TRAINING_PARTS = {"experiment", "experiments", "simulation", "cli", "tune", "tuning"}
FITTING_LIBRARIES = ("implicit",)  # third-party packages only training uses (ALS fits with implicit)
EVALUATOR = "rankstack.evaluation.evaluator"
MODELS = {  # the learned models whose training this checks stays apart, by artifact
    "sequential": ["rankstack.sequential.sasrec", "rankstack.retrieval.lightgcn", "rankstack.retrieval.two_tower",
                   "rankstack.retrieval.als"],
    "multitask": ["rankstack.ranking.multitask", "rankstack.ranking.networks"],
    "lambdarank": ["rankstack.ranking.lambdarank", "rankstack.ranking.candidate_features"],
    "neural": ["rankstack.ranking.neural_ranker", "rankstack.ranking.candidate_features"],
}


PROBE = """
import json, sys
from rankstack.pipeline.api import RecommendRequest
from rankstack.pipeline import Pipeline
pipeline = Pipeline.load(sys.argv[1])
(response,) = pipeline.recommend([RecommendRequest(user_id=sys.argv[2], k=3)])
assert len(response.items) == 3, response
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("rankstack", "implicit"))))
"""


def training_side(module: str) -> bool:
    """A dotted path with a part starting with ``train``, ending in ``_train`` or naming an off-line package."""
    return any(p.startswith("train") or p.endswith("_train") or p in TRAINING_PARTS for p in module.split("."))


def train_artifact(config: dict[str, object], folder: Path) -> Path:
    """Write ``config`` next to ``folder`` and run ``rankstack train`` on it; the artifact's path."""
    path = folder.with_suffix(".yaml")
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    result = CliRunner().invoke(app, ["train", str(path), "-o", str(folder), "--no-register", "--json"])
    assert result.exit_code == 0, result.output
    return folder


@pytest.fixture(scope="module")
def sequential_artifact(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Popular + LightGCN + two-tower + ALS sources, SASRec ranker (every learned source this slice split)."""
    root = tmp_path_factory.mktemp("sequential")
    events = small_events(n_users=40, n_items=30)
    events.write_csv(root / "events.csv")
    tiny = {"epochs": 2, "embedding_dim": 8}
    config = {
        "name": "sequential", "data": {"name": str(root / "events.csv")},
        "sources": [{"name": "popular", "k": 10, "quota": 3},
                    {"name": "lightgcn", "k": 10, "settings": {**tiny, "validation_ratio": 0.2, "eval_every": 1}},
                    {"name": "two-tower", "k": 10, "settings": {**tiny, "hidden_dim": 8, "validation_ratio": 0.2}},
                    {"name": "als", "k": 10, "settings": {"factors": 8, "iterations": 3, "num_threads": 1}}],
        "merge": {"k": 20},
        "ranker": {"source": "sasrec", "settings": {"epochs": 2, "max_len": 8, "hidden_dim": 8}, "history": 8},
        "exploration": {"policy": "greedy"},
        "evaluation": {"ks": [5], "funnel_ks": [10, 20]},
    }
    return train_artifact(config, root / "artifact"), str(events.get_column("user_id")[0])


@pytest.fixture(scope="module")
def lambdarank_artifact(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Popular + item-kNN sources, the LambdaRank ranker (a few trees)."""
    root = tmp_path_factory.mktemp("lambdarank")
    events = small_events(n_users=40, n_items=30)
    events.write_csv(root / "events.csv")
    config = {
        "name": "lambdarank", "data": {"name": str(root / "events.csv")},
        "sources": [{"name": "popular", "k": 10, "quota": 3}, {"name": "itemknn", "k": 10}],
        "merge": {"k": 20},
        "ranker": {"kind": "lambdarank", "rounds": 5, "early_stopping": 2, "min_history": 2,
                   "params": {"min_data_in_leaf": 5, "num_threads": 1}},
        "exploration": {"policy": "greedy"},
        "evaluation": {"ks": [5], "funnel_ks": [10, 20]},
    }
    return train_artifact(config, root / "artifact"), str(events.get_column("user_id")[0])


@pytest.fixture(scope="module")
def neural_artifact(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Popular + item-kNN sources, the neural ranker (two epochs of a small network)."""
    root = tmp_path_factory.mktemp("neural")
    events = small_events(n_users=40, n_items=30)
    events.write_csv(root / "events.csv")
    config = {
        "name": "neural", "data": {"name": str(root / "events.csv")},
        "sources": [{"name": "popular", "k": 10, "quota": 3}, {"name": "itemknn", "k": 10}],
        "merge": {"k": 20},
        "ranker": {"kind": "neural", "min_history": 2, "model": {"epochs": 2, "mlp_dims": [8], "expert_dims": [8]}},
        "exploration": {"policy": "greedy"},
        "evaluation": {"ks": [5], "funnel_ks": [10, 20]},
    }
    return train_artifact(config, root / "artifact"), str(events.get_column("user_id")[0])


@pytest.fixture(scope="module")
def multitask_artifact(sim_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The example simulator pipeline (multi-task ranker) on the small simulated log, one epoch."""
    config = simulator_config_dict(sim_folder, epochs=1)
    user = pl.read_parquet(sim_folder / "events.parquet").get_column("user_id")[0]
    return train_artifact(config, tmp_path_factory.mktemp("multitask") / "artifact"), str(user)


def loaded_modules(artifact: Path, user: str) -> list[str]:
    """The rankstack modules a fresh interpreter holds after loading ``artifact`` and serving ``user``."""
    done = subprocess.run([sys.executable, "-c", PROBE, str(artifact), user], capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.fixture(scope="module")
def loaded(sequential_artifact: tuple[Path, str], multitask_artifact: tuple[Path, str],
           lambdarank_artifact: tuple[Path, str], neural_artifact: tuple[Path, str]) -> dict[str, list[str]]:
    """The modules each artifact's loading imports."""
    return {"sequential": loaded_modules(*sequential_artifact), "multitask": loaded_modules(*multitask_artifact),
            "lambdarank": loaded_modules(*lambdarank_artifact), "neural": loaded_modules(*neural_artifact)}


@pytest.mark.parametrize("kind", ["sequential", "multitask", "lambdarank", "neural"])
def test_loading_an_artifact_imports_no_training_module(loaded: dict[str, list[str]], kind: str) -> None:
    modules = loaded[kind]
    assert set(MODELS[kind]) <= set(modules)  # the probe loaded the learned models this check is about
    assert [m for m in modules if training_side(m) or m.split(".")[0] in FITTING_LIBRARIES] == []


@pytest.mark.parametrize("kind", ["sequential", "multitask", "lambdarank", "neural"])
def test_loading_an_artifact_does_not_import_the_evaluator(loaded: dict[str, list[str]], kind: str) -> None:
    assert EVALUATOR not in loaded[kind]


def test_the_training_predicate_follows_the_contract() -> None:
    for name in ("rankstack.pipeline.train", "rankstack.sequential.sasrec_train", "rankstack.experiments.offline",
                 "rankstack.experiment", "rankstack.simulation.world", "rankstack.cli.serve", "rankstack.tuning",
                 "rankstack.trainer"):
        assert training_side(name), name
    for name in ("rankstack.sequential.sasrec", "rankstack.pipeline.artifact", "rankstack.retrieval.lightgcn",
                 "rankstack.evaluation.metrics", "rankstack.client", "rankstack.retrained", "rankstack.pipeline"):
        assert not training_side(name), name


def test_importing_the_models_imports_neither_their_training_nor_the_evaluator() -> None:
    modules = [m for names in MODELS.values() for m in names] + ["rankstack.ranking.ranker_files",
                                                                  "rankstack.retrieval.source_files"]
    code = (f"import importlib, json, sys\nfor m in {modules!r}:\n    importlib.import_module(m)\n"
            "print(json.dumps(sorted(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    imported = json.loads(done.stdout.strip().splitlines()[-1])
    assert EVALUATOR not in imported
    assert [m for m in imported if m.startswith("rankstack") and training_side(m)] == []
    assert [m for m in imported if m.split(".")[0] in FITTING_LIBRARIES] == []
