"""estimate_policy_value: the whole-log estimate, bootstrap rows, relative errors, skipped estimators, support."""

from __future__ import annotations

import numpy as np
import pytest

from rankstack.ope.bandit_log import BanditLog
from rankstack.ope.estimators import ALL_ESTIMATORS, make_estimator
from rankstack.ope.policy_value import estimate_policy_value
from rankstack.ope.reward_models import LogisticRewardModel


def uniform_log(n: int = 400, seed: int = 0) -> BanditLog:
    """A uniform logger over 4 actions, 1 slot; action 3 clicks half the time, the others 10%."""
    rng = np.random.default_rng(seed)
    action = rng.integers(0, 4, n)
    reward = (rng.random(n) < np.where(action == 3, 0.5, 0.1)).astype(float)
    return BanditLog(reward, action, np.zeros(n, dtype=np.int64), np.full(n, 0.25), np.zeros((n, 0)),
                     np.arange(4), 1)


def test_rows_errors_and_support():
    target = np.array([[[0.1], [0.1], [0.1], [0.7]]])  # true value 0.1 * 0.3 + 0.5 * 0.7 = 0.38
    estimators = [make_estimator(n) for n in ALL_ESTIMATORS]
    result = estimate_policy_value(uniform_log(), target, estimators, make_model=LogisticRewardModel, n_boot=3, folds=2,
                                   ground_truth=0.38, behavior_dist=np.full((1, 4, 1), 0.25),
                                   action_embedding=np.array([0, 0, 1, 1]))
    assert set(result["estimators"]) == set(ALL_ESTIMATORS) and result["ground_truth"] == 0.38
    for name, row in result["estimators"].items():
        assert row["ci"][0] <= row["ci"][1] and row["std"] >= 0, name
        assert row["relative_error"] == pytest.approx(abs(row["estimate"] - 0.38) / 0.38)
        assert row["relative_error_mean"] >= 0 and row["relative_error_std"] >= 0
    assert abs(result["estimators"]["ips"]["estimate"] - 0.38) < 0.1
    assert result["support"]["uncovered_target_mass"] == 0.0 and result["support"]["rounds"] == 400


def test_estimators_without_their_inputs_are_left_out():
    estimators = [make_estimator(n) for n in ALL_ESTIMATORS]
    result = estimate_policy_value(uniform_log(), np.full((1, 4, 1), 0.25), estimators, make_model=None, n_boot=2)
    assert set(result["estimators"]) == {"ips", "snips"}
    assert result["ground_truth"] is None and "relative_error_mean" not in result["estimators"]["ips"]
    assert result["estimators"]["ips"]["estimate"] == pytest.approx(uniform_log().reward.mean())
