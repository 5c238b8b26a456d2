"""The pipeline tests' fixtures (small dataset, fake sequential ranker, trained simulator pipeline) and the ranking
tests' tiny simulated log, for the experiments tests."""

from __future__ import annotations

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
from ranking.conftest import sim_dataset, sim_log, tiny_config  # noqa: F401
