"""The loop's slate inputs from an ε-greedy log: greedy slots read off the propensities, prefix probabilities, the
action axis, and estimates computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from rankstack.experiments.loop_estimates import (
    LoggedRounds,
    action_axis,
    estimate_all,
    greedy_slots,
    logging_cascade,
    slot_calibration,
    target_inputs,
)

EPS, POOL = 0.2, 4
EXPLORE, GREEDY = EPS / POOL, 1 - EPS + EPS / POOL  # 0.05, 0.85


def rounds(reward: np.ndarray | None = None) -> LoggedRounds:
    """Two requests, two slots: request 0 shows the greedy slate, request 1 explored (its slot 1 greedy by chance)."""
    items = np.array([[10, 11], [13, 11]])
    prop = np.array([[GREEDY, GREEDY], [EXPLORE, GREEDY]])
    return LoggedRounds(items, prop, np.array([[1.0, 0.0], [1.0, 1.0]]) if reward is None else reward, EPS, POOL)


def test_greedy_slots_and_prefix_probabilities() -> None:
    assert greedy_slots(rounds()).tolist() == [[True, True], [False, True]]
    uniform = [EPS / 4, EPS / 12]  # ε·Π 1/(pool − j)
    expected = [[1 - EPS + uniform[0], 1 - EPS + uniform[1]], uniform]
    assert logging_cascade(rounds()) == pytest.approx(np.array(expected))


@pytest.mark.parametrize("bad", [0.5, 0.049, 1.0])
def test_a_propensity_epsilon_greedy_cannot_log_is_named(bad: float) -> None:
    r = rounds()
    prop = r.propensity.copy()
    prop[1, 0] = bad
    with pytest.raises(ValueError, match=r"at request 1, slot 0 is neither .* ε = 0.2 over 4 items"):
        greedy_slots(LoggedRounds(r.items, prop, r.reward, EPS, POOL))


def test_action_axis_appends_the_targets_unlogged_items() -> None:
    actions, where = action_axis(np.array([[1, 2], [3, 4]]), np.array([[2, 5], [3, 4]]))
    assert actions.tolist() == [[1, 2, 5, -1], [3, 4, -1, -1]]
    assert where.tolist() == [[1, 2], [0, 1]]


def test_estimates_by_hand() -> None:
    """Target slates [10, 12] and [13, 11]: it agrees with the log at (0, slot 0), (1, slot 0) and (1, slot 1)."""
    log, target = target_inputs(rounds(), np.array([[10, 12], [13, 11]]))
    found = estimate_all(log, target, n_boot=50, seed=0)
    assert set(found) == {"independent IPS", "reward-interaction IPS", "standard IPS"}  # no reward model: no DR
    iips = ((1 / GREEDY) * 1 + 0 + (1 / EXPLORE) * 1 + (1 / GREEDY) * 1) / 2
    assert found["independent IPS"].value == pytest.approx(iips)
    cascade = logging_cascade(rounds())
    # reward interaction: round 0's prefix (10) matches, (10, 11) does not; round 1 matches both prefixes
    rips = (1 / cascade[0, 0] + 1 / cascade[1, 0] + 1 / cascade[1, 1]) / 2
    assert found["reward-interaction IPS"].value == pytest.approx(rips)
    assert found["standard IPS"].value == pytest.approx((2 / cascade[1, 1]) / 2)


def test_independent_dr_with_a_per_slot_model() -> None:
    q = np.full((2, 4, 2), 0.5)  # Q̂ = 0.5 everywhere
    log, target = target_inputs(rounds(), np.array([[10, 12], [13, 11]]), q)
    dr = estimate_all(log, target, n_boot=50, seed=0)["independent DR"].value
    # Σ_k [0.5 + w (r − 0.5)] per round
    expected = ((0.5 + (1 - 0.5) / GREEDY + 0.5) + (0.5 + (1 - 0.5) / EXPLORE + 0.5 + (1 - 0.5) / GREEDY)) / 2
    assert dr == pytest.approx(expected)


def test_target_of_the_wrong_shape_is_refused() -> None:
    with pytest.raises(ValueError, match=r"must be \[2, 2\] like the log's, got \[2, 3\]"):
        target_inputs(rounds(), np.zeros((2, 3), np.int64))


def test_slot_calibration_is_the_ratio_of_sums() -> None:
    assert slot_calibration(np.array([[1.0, 0.0], [1.0, 0.0]]), np.array([[0.5, 0.0], [0.5, 0.0]])).tolist() == [2.0,
                                                                                                                1.0]
