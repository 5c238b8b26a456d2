"""Shared fixtures: a small timed dataset with item attributes, a fake sequential ranker, pipeline builders, a small
simulated marketplace log."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
import pytest
import torch
import yaml

from rankstack.bandits.logging_policies import simulate
from rankstack.data.dataset import Dataset
from rankstack.data.splits import leave_one_out
from rankstack.experiments.evaluate_run import fit_and_eval_parts
from rankstack.experiments.pipeline_training import TrainResult, fit_stages, train_pipeline
from rankstack.pipeline.components import REGISTRY
from rankstack.pipeline.config import validate_pipeline_config
from rankstack.pipeline.pipeline import Pipeline
from rankstack.retrieval.source import CandidateSource, SourceConfig
from rankstack.simulation import SimulatorConfig

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "pipelines"


class FakeSeqConfig(SourceConfig):
    """``mode``: ``low_id`` scores lower item ids higher; ``raise`` fails; ``sleep`` waits ``sleep_s`` first."""

    mode: Literal["low_id", "raise", "sleep"] = "low_id"
    sleep_s: float = 0.5


class FakeSeq(CandidateSource):
    """A stand-in for a sequential ranker: re-scores candidates and records the histories it was given."""

    name = "fakeseq"
    config_class = FakeSeqConfig
    config: FakeSeqConfig
    seen_histories: list[np.ndarray]

    def fit(self, dataset: Dataset) -> FakeSeq:
        """Remember the training matrix."""
        self.train_ = dataset.interaction_matrix()
        self.seen_histories = []
        return self

    def score(self, user_ids: np.ndarray) -> torch.Tensor:
        """Lower ids score higher, for every user."""
        n = self._require_fitted().shape[1]
        return -torch.arange(n, dtype=torch.float32).expand(len(user_ids), n)

    def score_candidates(self, histories: Sequence[np.ndarray], candidates: np.ndarray) -> torch.Tensor:
        """−item id per candidate (after failing or sleeping, by mode)."""
        if self.config.mode == "raise":
            raise RuntimeError("ranker exploded")
        if self.config.mode == "sleep":
            time.sleep(self.config.sleep_s)
        self.seen_histories = [np.asarray(h) for h in histories]
        return -torch.as_tensor(np.asarray(candidates), dtype=torch.float32)

    def state_tensors(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Nothing learned beyond the training matrix."""
        return {"unused": torch.zeros(1)}, {}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """Nothing to restore."""
        self.seen_histories = []


FAKESEQ = (f"{FakeSeq.__module__}:{FakeSeq.__qualname__}", None)  # its component registry entry


@pytest.fixture(autouse=True)
def _fake_ranker_and_one_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setitem(REGISTRY["source"], "fakeseq", FAKESEQ)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def small_events(n_users: int = 60, n_items: int = 40, per_user: int = 8, seed: int = 0) -> pl.DataFrame:
    """Timed events: user u mostly watches items of group u % 4 (item i is in group i % 4)."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        own = [i for i in range(n_items) if i % 4 == u % 4]
        picks = rng.choice(own, size=per_user - 2, replace=False).tolist()
        picks += rng.choice([i for i in range(n_items) if i not in picks], size=2, replace=False).tolist()
        rng.shuffle(picks)
        rows += [(f"u{u}", f"i{i}", 1_700_000_000 + 60 * t) for t, i in enumerate(picks)]
    return pl.DataFrame(rows, schema=["user_id", "item_id", "timestamp"], orient="row")


@pytest.fixture(scope="session")
def small_split() -> tuple[Dataset, Dataset]:
    """(fit data = train ∪ validation, test) of the small dataset, with item attributes."""
    n_items = 40
    features = pl.DataFrame({
        "item_id": [f"i{i}" for i in range(n_items)],
        "category": [f"c{i % 4}" for i in range(n_items)],
        "tags": [["even"] if i % 2 == 0 else ["odd", "x"] for i in range(n_items)],
        "margin": [float(i % 5) / 4 for i in range(n_items)],
    })
    data = Dataset.from_events(small_events(n_items=n_items), name="small", item_features=features)
    return fit_and_eval_parts(leave_one_out(data), "test")


# Budgets no loaded CI machine misses; tests of the deadline behaviour set their own.
GENEROUS_DEADLINES = {"retrieval": 30_000, "ranker": 30_000, "rerank": 30_000}


def config_dict(**overrides: Any) -> dict[str, Any]:
    """A small pipeline: popular + item-kNN, greedy, no ranker, stage budgets no loaded machine misses (override any
    top-level key)."""
    base: dict[str, Any] = {
        "name": "small",
        "data": {"name": "small"},
        "sources": [{"name": "popular", "k": 20, "quota": 5}, {"name": "itemknn", "settings": {"neighbors": 10},
                                                               "k": 20, "quota": 10}],
        "merge": {"k": 30},
        "exploration": {"policy": "greedy"},
        "deadlines_ms": GENEROUS_DEADLINES,
        "evaluation": {"ks": [5, 10], "funnel_ks": [10, 20]},
    }
    base.update(overrides)
    return base


def build(fit: Dataset, **overrides: Any) -> Pipeline:
    """Fit a pipeline from ``config_dict(**overrides)`` on ``fit``."""
    config = validate_pipeline_config(config_dict(**overrides))
    return Pipeline(fit_stages(config, fit, lambda _m: None))


def manifest_for(pipeline: Pipeline, version: str = "small-test-0001") -> dict[str, Any]:
    """The fields ``save_artifact`` needs from training."""
    return {"version": version, "name": pipeline.config.name, "created_at": "2026-01-01T00:00:00+00:00",
            "config": pipeline.config.model_dump(mode="json"), "data": {"name": "small"},
            "metrics": {"pipeline": {"recall@10": 0.5}}}


def simulator_config_dict(data: Path, epochs: int = 6) -> dict[str, Any]:
    """``configs/pipelines/simulator.yaml`` pointed at ``data`` with a short training run."""
    config = yaml.safe_load((CONFIGS / "simulator.yaml").read_text(encoding="utf-8"))
    config["data"]["name"] = str(data)
    config["ranker"]["model"]["epochs"] = epochs
    config["deadlines_ms"] = GENEROUS_DEADLINES
    return dict(config)


@pytest.fixture(scope="session")
def sim_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small simulated marketplace log with its truth and simulator config (25,000 impressions: with much
    fewer there are too few conversions to learn from)."""
    folder = tmp_path_factory.mktemp("sim") / "sim"
    config = SimulatorConfig(n_users=250, n_items=60, n_impressions=25_000, seed=0)
    simulate(config).save(folder)
    return folder


@pytest.fixture(scope="session")
def sim_trained(sim_folder: Path) -> Iterator[TrainResult]:
    """The example simulator pipeline trained in process on ``sim_folder`` (greedy: deterministic slates)."""
    raw = simulator_config_dict(sim_folder)
    raw["exploration"] = {"policy": "greedy"}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the machine's cores are shared: one thread trains fastest
    try:
        yield train_pipeline(validate_pipeline_config(raw))
    finally:
        torch.set_num_threads(threads)
