"""Bad inputs are rejected naming the field and row; the support report shows overlap problems."""

from __future__ import annotations

import numpy as np
import pytest

from rankstack.ope.feedback import OffPolicyData, support_report


def fields(**changes):
    """A valid 3-round, 2-action, 2-slot log with ``changes`` applied."""
    base = dict(
        reward=np.array([1.0, 0.0, 1.0]), action=np.array([0, 1, 1]), position=np.array([0, 1, 0]),
        pscore=np.array([0.5, 0.5, 0.5]), action_dist=np.full((3, 2, 2), 0.5),
        estimated_rewards=np.zeros((3, 2, 2)),
    )
    return {**base, **changes}


@pytest.mark.parametrize(("changes", "message"), [
    ({"pscore": np.array([0.5, 0.0, 0.5])}, r"pscore\[1\] = 0.0: logged propensities must lie in \(0, 1\]"),
    ({"pscore": np.array([0.5, 0.5, 1.5])}, r"pscore\[2\] = 1.5"),
    ({"pscore": np.array([0.5, np.nan, 0.5])}, r"pscore\[1\] is NaN"),
    ({"reward": np.array([1.0, np.nan, 0.0])}, r"reward\[1\] is NaN"),
    ({"reward": np.array([], dtype=float)}, "empty"),
    ({"action": np.array([0, 1])}, "action has 2 rounds, expected 3"),
    ({"action": np.array([0.0, 1.0, 1.0])}, "integer indices"),
    ({"action": np.array([0, 2, 1])}, r"action\[1\] = 2 is outside the evaluated policy's 2 actions"),
    ({"position": np.array([0, 0, 5])}, r"position\[2\] = 5 is outside the evaluated policy's 2 slots"),
    ({"action_dist": np.full((3, 2), 0.5)}, "action_dist must be 3-D"),
    ({"action_dist": np.full((2, 2, 2), 0.5)}, "action_dist has 2 rounds, expected 3"),
    ({"action_dist": np.full((3, 2, 2), 0.4)}, r"action_dist\[0, :, 0\] sums to 0.8"),
    ({"action_dist": np.stack([np.array([[1.5, 0.5], [-0.5, 0.5]])] * 3)}, "must lie in \\[0, 1\\]"),
    ({"action_dist": np.where(np.arange(12).reshape(3, 2, 2) == 5, np.nan, 0.5)}, r"action_dist\[1, 0, 1\] is NaN"),
    ({"estimated_rewards": np.zeros((3, 3, 2))}, "estimated_rewards has shape"),
    ({"behavior_dist": np.full((1, 2, 1), 0.5)}, "behavior_dist has shape"),
    ({"action_embedding": np.array([0.5, 1.0])}, "action_embedding must be integer ids"),
])
def test_bad_inputs(changes, message):
    with pytest.raises(ValueError, match=message):
        OffPolicyData(**fields(**changes))


def test_shared_one_row_policy_and_take():
    data = OffPolicyData(**fields(action_dist=np.full((1, 2, 2), 0.5)))
    assert data.weights().tolist() == [1.0, 1.0, 1.0]
    sample = data.take(np.array([2, 2, 0, 1]))
    assert sample.n_rounds == 4 and sample.action_dist.shape == (1, 2, 2)
    assert sample.estimated_rewards is not None and sample.estimated_rewards.shape == (4, 2, 2)
    assert sample.reward.tolist() == [1.0, 1.0, 1.0, 0.0]


def test_support_report_flags_target_mass_the_logger_never_shows():
    target = np.zeros((1, 2, 2))
    target[0, 1, :] = 1.0  # the target always shows action 1 …
    behavior = np.zeros((1, 2, 2))
    behavior[0, 0, :] = 1.0  # … which the logger never shows
    data = OffPolicyData(**fields(action=np.array([0, 0, 0]), pscore=np.ones(3), action_dist=target,
                                  behavior_dist=behavior))
    report = support_report(data)
    assert report["uncovered_target_mass"] == pytest.approx(1.0)
    assert report["target_never_shows_logged_action"] == pytest.approx(1.0)
    full = support_report(OffPolicyData(**fields()))
    assert full["uncovered_target_mass"] is None and full["effective_sample_size"] == pytest.approx(3.0)
