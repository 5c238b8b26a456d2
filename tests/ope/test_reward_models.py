"""The logistic reward model learns which action pays; cross-fitting predicts each fold out of sample."""

from __future__ import annotations

import numpy as np
import pytest

from rankstack.ope.bandit_log import BanditLog
from rankstack.ope.reward_models import (
    LogisticRewardModel,
    MultitaskRewardModel,
    RewardModel,
    cross_fit,
    select_c,
)


def planted(n: int = 600, seed: int = 0) -> BanditLog:
    """Action 2 clicks 60% of the time, the others 5%; the context is noise."""
    rng = np.random.default_rng(seed)
    action = rng.integers(0, 3, n)
    reward = (rng.random(n) < np.where(action == 2, 0.6, 0.05)).astype(float)
    return BanditLog(reward, action, rng.integers(0, 2, n), np.full(n, 1 / 3), rng.normal(size=(n, 2)),
                     np.array(["a", "b", "c"]), 2)


def test_logistic_model_ranks_the_paying_action_first():
    model = LogisticRewardModel().fit(planted())
    assert isinstance(model, RewardModel)
    q = model.predict(planted(n=50, seed=1))
    assert q.shape == (50, 3, 2)
    assert (q[:, 2, :] > q[:, 0, :]).all() and (q[:, 2, :] > q[:, 1, :]).all()
    assert q[:, 2, :].mean() == pytest.approx(0.6, abs=0.1)


def test_logistic_model_uses_action_features_and_handles_one_class():
    log = planted()
    with_features = BanditLog(log.reward, log.action, log.position, log.pscore, log.context, log.items, 2,
                              action_features=np.array([[0.0], [0.0], [1.0]]))
    q = LogisticRewardModel().fit(with_features).predict(with_features)
    assert np.allclose(q[:, 0], q[:, 1]) and (q[:, 2] > q[:, 0]).all()
    silent = BanditLog(np.zeros(10), log.action[:10], log.position[:10], log.pscore[:10], log.context[:10],
                       log.items, 2)
    assert np.all(LogisticRewardModel().fit(silent).predict(silent) < 1e-3)


def test_predict_before_fit_and_on_another_layout():
    with pytest.raises(RuntimeError, match="before fit"):
        LogisticRewardModel().predict(planted())
    model = LogisticRewardModel().fit(planted())
    log = planted()
    other = BanditLog(log.reward, log.action, log.position, log.pscore, log.context[:, :1], log.items, 2)
    with pytest.raises(ValueError, match="context features"):
        model.predict(other)


def test_cross_fit_predicts_every_round_out_of_fold():
    log = planted(n=300)
    q = cross_fit(LogisticRewardModel, log, folds=3, seed=0)
    assert q.shape == (300, 3, 2) and np.isfinite(q).all()
    assert not np.allclose(q, LogisticRewardModel().fit(log).predict(log))
    assert np.allclose(cross_fit(LogisticRewardModel, log, folds=1), LogisticRewardModel().fit(log).predict(log))
    with pytest.raises(ValueError, match="folds"):
        cross_fit(LogisticRewardModel, log, folds=0)


def test_select_c_prefers_a_weak_penalty_when_the_signal_is_strong():
    best, losses = select_c(planted(), grid=(1e-4, 1.0), folds=2)
    assert best == 1.0 and losses[1.0] < losses[1e-4]


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_multitask_ranker_as_reward_model():
    model = MultitaskRewardModel(settings={"epochs": 3, "batch_size": 256})
    assert isinstance(model, RewardModel)
    with pytest.raises(RuntimeError, match="before fit"):
        model.predict(planted())
    q = model.fit(planted()).predict(planted(n=50, seed=1))
    assert q.shape == (50, 3, 2) and ((q >= 0) & (q <= 1)).all()
    assert (q[:, 2, :].mean() > q[:, 0, :].mean()) and (q[:, 2, :].mean() > q[:, 1, :].mean())
