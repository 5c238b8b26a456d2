"""The move into bandits/ kept every draw: simulator logs and served slates equal the pre-renovation code's.

The expected values were produced by the code before the move (main at c2e1a32: ``simulation/policies.py``
and ``pipeline/exploration_stage.py``) on the same seeds.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from rankstack.bandits.draws import request_rng
from rankstack.bandits.logging_policies import simulate
from rankstack.pipeline.config import ExplorationStage
from rankstack.pipeline.exploration_stage import explore
from rankstack.simulation import PolicyConfig, SimulatorConfig

LOGS = {"uniform": "edb8fa39b647a58d", "epsilon_greedy": "8c93b069aa1727a0", "softmax": "a166148074df3de9"}
SLATES = {
    "epsilon_greedy": [[106, 129, 107, 105, 104], [100, 101, 102, 103, 104], [100, 101, 102, 103, 104],
                       [100, 101, 102, 103, 104]],
    "softmax": [[100, 101, 102, 104, 108], [101, 102, 104, 107, 125], [100, 102, 103, 106, 113],
                [100, 101, 103, 105, 111]],
}


@pytest.mark.parametrize("kind", sorted(LOGS))
def test_simulator_logs_are_unchanged(kind: str) -> None:
    log = simulate(SimulatorConfig(n_users=60, n_items=25, n_impressions=3000, slate_size=4,
                                   policy=PolicyConfig(kind=kind)))  # type: ignore[arg-type]
    digest = hashlib.sha256(np.ascontiguousarray(log.item).tobytes() + np.round(log.propensity, 9).tobytes())
    assert digest.hexdigest()[:16] == LOGS[kind]


@pytest.mark.parametrize("policy", sorted(SLATES))
def test_served_slates_are_unchanged(policy: str) -> None:
    pool, scores = np.arange(100, 130), np.linspace(2, -1, 30)
    stage = ExplorationStage(policy=policy, epsilon=0.5, temperature=0.5)  # type: ignore[arg-type]
    got = [explore(pool, scores, 5, stage, request_rng(0, f"r{i}", "u"))[0].tolist() for i in range(4)]
    assert got == SLATES[policy]
