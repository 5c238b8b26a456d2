"""A small simulated log shared by the ranking tests."""

from __future__ import annotations

import pytest

from rankstack.bandits.logging_policies import simulate
from rankstack.data.dataset import Dataset
from rankstack.ranking.impressions import ImpressionSplit, impression_table, temporal_impression_split
from rankstack.simulation import SimulationLog, SimulatorConfig

TINY = SimulatorConfig(n_users=300, n_items=30, n_impressions=24_000, n_user_features=4, n_item_features=4,
                       chunk_requests=2_000, seed=3)


@pytest.fixture(scope="session")
def tiny_config() -> SimulatorConfig:
    """The tiny marketplace (300 users, 30 items, 24,000 impressions)."""
    return TINY


@pytest.fixture(scope="session")
def sim_log() -> SimulationLog:
    """The tiny marketplace's log under its configured logging policy."""
    return simulate(TINY)


@pytest.fixture(scope="session")
def sim_dataset(sim_log: SimulationLog) -> Dataset:
    """The tiny log as a dataset."""
    return sim_log.to_dataset()


@pytest.fixture(scope="session")
def sim_split(sim_dataset: Dataset) -> ImpressionSplit:
    return temporal_impression_split(impression_table(sim_dataset))


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread() -> None:
    """Tiny models train faster on one thread than on a shared, oversubscribed CPU."""
    import torch

    torch.set_num_threads(1)
