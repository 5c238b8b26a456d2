"""The pipeline tests' fixtures (small dataset, fake sequential ranker, trained simulator pipeline) and the ranking
tests' tiny simulated log, for the experiments tests."""

from __future__ import annotations

import pytest

from pipeline.conftest import (  # noqa: F401  (fixtures are found by name)
    GENEROUS_DEADLINES,
    FakeSeq,
    _fake_ranker_and_one_thread,
    build,
    config_dict,
    manifest_for,
    sim_folder,
    sim_trained,
    simulator_config_dict,
    small_events,
    small_split,
)
from rankstack.bandits.logging_policies import simulate
from rankstack.data.dataset import Dataset
from rankstack.simulation import SimulationLog, SimulatorConfig

TINY = SimulatorConfig(n_users=300, n_items=30, n_impressions=24_000, n_user_features=4, n_item_features=4,
                       chunk_requests=2_000, seed=3)


@pytest.fixture(scope="session")
def tiny_config() -> SimulatorConfig:
    """The tiny marketplace of the multi-task run tests."""
    return TINY


@pytest.fixture(scope="session")
def sim_log() -> SimulationLog:
    """The tiny marketplace's log."""
    return simulate(TINY)


@pytest.fixture(scope="session")
def sim_dataset(sim_log: SimulationLog) -> Dataset:
    """The tiny marketplace's log as a dataset."""
    return sim_log.to_dataset()
