"""The slate estimators' array contract: each bad input is refused with its field, round and slot named; support
problems are reported, not hidden."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from rankstack.errors import DataValidationError
from rankstack.ope.slate_estimators import independent_ips
from rankstack.ope.slate_inputs import SlateLog, SlateTarget, SupportWarning, slate_target


def log_arrays(**changes: Any) -> dict[str, Any]:
    """A valid log of 3 rounds, 2 slots over 4 actions (uniform logger), with ``changes`` applied."""
    arrays: dict[str, Any] = {
        "rewards": np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]]),
        "positions": np.array([[0, 1], [2, 3], [3, 0]]),
        "pscore": np.full((3, 2), 0.25),
        "pscore_cascade": np.tile([0.25, 0.25 / 3], (3, 1)),
    }
    arrays.update(changes)
    return arrays


def with_value(name: str, at: tuple[int, ...], value: float) -> np.ndarray:
    arr = np.array(log_arrays()[name], dtype=np.float64)
    arr[at] = value
    return arr


@pytest.mark.parametrize(("changes", "column", "row", "message"), [
    ({"pscore": with_value("pscore", (1, 0), 0.0)}, "pscore", 1, "must be > 0"),
    ({"pscore": with_value("pscore", (2, 1), 1.5)}, "pscore", 2, "must be ≤ 1"),
    ({"pscore": with_value("pscore", (0, 1), np.nan)}, "pscore", 0, "not a finite number"),
    ({"pscore": with_value("pscore", (0, 0), -0.1)}, "pscore", 0, "must be > 0"),
    ({"rewards": with_value("rewards", (2, 0), np.nan)}, "rewards", 2, "not a finite number"),
    ({"rewards": with_value("rewards", (1, 1), np.inf)}, "rewards", 1, "not a finite number"),
    ({"pscore": np.full((3, 3), 0.25)}, "pscore", None, "expected shape [3, 2]"),
    ({"positions": np.array([[0, 1], [2, 3]])}, "positions", None, "expected shape [3, 2]"),
    ({"rewards": np.ones(3)}, "rewards", None, "expected shape [any, any]"),
    ({"positions": np.array([[0, 1], [2, -1], [3, 0]])}, "positions", 1, "negative action index at slot 1"),
    ({"positions": np.array([[0.0, 1], [2, 3], [3, 0]])}, "positions", None, "must be integers"),
    ({"pscore_cascade": np.array([[0.25, 0.5], [0.25, 0.1], [0.25, 0.1]])}, "pscore_cascade", 0, "must not grow"),
    ({"pscore_cascade": np.array([[0.25, 0.1], [0.5, 0.1], [0.25, 0.1]])}, "pscore_cascade", 1,
     "disagrees with pscore at slot 0"),
    ({"pscore_cascade": with_value("pscore_cascade", (2, 1), 0.0)}, "pscore_cascade", 2, "must be > 0"),
    ({"rewards": np.zeros((0, 2)), "positions": np.zeros((0, 2), dtype=int), "pscore": np.zeros((0, 2)),
      "pscore_cascade": None}, "rewards", None, "at least one round"),
])
def test_a_bad_log_is_refused_with_its_place(changes: dict[str, Any], column: str, row: int | None,
                                              message: str) -> None:
    with pytest.raises(DataValidationError, match=message.replace("[", r"\[").replace("]", r"\]")) as err:
        SlateLog(**log_arrays(**changes))
    assert err.value.column == column
    assert err.value.row == row
    assert str(err.value).startswith("slate log")


def good_dist(m: int = 4) -> np.ndarray:
    return np.full((3, m, 2), 1.0 / m)


@pytest.mark.parametrize(("kwargs", "column", "row", "message"), [
    ({"action_dist": np.full((2, 4, 2), 0.25)}, "action_dist", None, "expected shape [3, any, 2]"),
    ({"action_dist": np.full((3, 4, 3), 0.25)}, "action_dist", None, "expected shape [3, any, 2]"),
    ({"action_dist": np.full((3, 4, 2), 0.3)}, "action_dist", 0, "sum to 1.2"),
    ({"action_dist": np.where(np.arange(4)[None, :, None] == 0, 1.5, -0.5 / 3) * np.ones((3, 4, 2))},
     "action_dist", 0, "must be ≥ 0"),
    ({"action_dist": good_dist(3)}, "action_dist", 1, "never considers"),
    ({"cascade": np.full((3, 2), 1.2)}, "cascade", 0, "must be ≤ 1"),
    ({"cascade": np.array([[0.1, 0.2], [0.1, 0.1], [0.1, 0.1]])}, "cascade", 0, "must not grow"),
    ({"action_dist": good_dist(), "cascade": np.full((3, 2), 0.1)}, "cascade", 0, "disagrees with action_dist"),
    ({"reward_model": np.zeros((3, 4, 2)), "conditional_dist": good_dist(), "cascade": np.full((3, 2), 0.25)},
     "conditional_dist", 0, "disagrees with cascade"),
    ({"reward_model": np.full((3, 4, 2), np.nan), "conditional_dist": good_dist()}, "reward_model", 0,
     "not a finite number"),
])
def test_a_bad_target_is_refused_with_its_place(kwargs: dict[str, Any], column: str, row: int | None,
                                                 message: str) -> None:
    log = SlateLog(**log_arrays())
    with pytest.raises(DataValidationError, match=message.replace("[", r"\[").replace("]", r"\]")) as err:
        slate_target(log, **kwargs)
    assert err.value.column == column
    assert err.value.row == row


def test_the_logged_action_outside_the_policy_is_named() -> None:
    log = SlateLog(**log_arrays())
    with pytest.raises(DataValidationError, match="shows action 3 at slot 1, which the evaluated policy never "
                                                  "considers \\(action_dist has 3 actions\\)"):
        slate_target(log, action_dist=good_dist(3))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({}, "needs at least one of"),
    ({"reward_model": np.zeros((3, 4, 2))}, "needs both reward_model and conditional_dist .* or action_dist"),
    ({"conditional_dist": good_dist()}, "needs both reward_model and conditional_dist"),
    ({"logging_dist": good_dist()}, "pass action_dist too"),
])
def test_incomplete_target_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        slate_target(SlateLog(**log_arrays()), **kwargs)


def test_support_deficit_is_measured_and_warned() -> None:
    """μ never shows action 3 at slot 0 of any round; π puts 0.4 there: 0.4 of 2 slots' mass = 20%."""
    log = SlateLog(**log_arrays(positions=np.array([[0, 1], [2, 3], [1, 0]])))
    mu = good_dist().copy()
    mu[:, 3, 0] = 0.0
    mu[:, :3, 0] = 1 / 3
    pi = good_dist().copy()
    pi[:, :, 0] = [0.2, 0.2, 0.2, 0.4]
    target = slate_target(log, action_dist=pi, logging_dist=mu)
    assert np.allclose(target.support_deficit, 0.2)
    with pytest.warns(SupportWarning, match="20.000% of its \\(item, slot\\) mass .* \\(3 rounds\\)"):
        est = independent_ips(log, target, n_boot=20)
    assert est.support_deficit == pytest.approx(0.2)


def test_full_support_reports_zero_and_no_warning(recwarn: pytest.WarningsRecorder) -> None:
    log = SlateLog(**log_arrays())
    est = independent_ips(log, slate_target(log, action_dist=good_dist(), logging_dist=good_dist()), n_boot=20)
    assert est.support_deficit == 0.0
    assert not [w for w in recwarn if issubclass(w.category, SupportWarning)]


def test_targets_of_chunks_concatenate() -> None:
    log = SlateLog(**log_arrays())
    whole = slate_target(log, action_dist=good_dist(), cascade=np.tile([0.25, 0.25 / 3], (3, 1)))
    part = SlateTarget(pscore=whole.pscore[:1], inclusion=whole.inclusion[:1])
    rest = SlateTarget(pscore=whole.pscore[1:], inclusion=whole.inclusion[1:], cascade=whole.cascade[1:])
    merged = SlateTarget.concat([part, rest])
    assert np.array_equal(merged.pscore, whole.pscore) and merged.cascade is None


@pytest.mark.parametrize(("field", "value", "message"), [
    ("pscore", np.full((2, 2), 0.5), "expected shape \\[3, 2\\]"),
    ("pscore", np.full((3, 2), 1.5), "must be ≤ 1"),
    ("cascade", np.full((3, 1), 0.5), "expected shape \\[3, 2\\]"),
    ("inclusion", np.full((3, 2), 2.5), "must lie in \\[0, K = 2\\]"),
    ("q_logged", np.full((3, 2), np.nan), "not a finite number"),
    ("support_deficit", np.zeros((3, 2)), "expected shape \\[3\\]"),
])
def test_a_target_that_does_not_fit_the_log_is_refused(field: str, value: np.ndarray, message: str) -> None:
    log = SlateLog(**log_arrays())
    target = SlateTarget(pscore=np.full((3, 2), 0.25), **{field: value}) if field != "pscore" else SlateTarget(
        pscore=value)
    with pytest.raises(DataValidationError, match=message) as err:
        independent_ips(log, target, n_boot=10)
    assert err.value.column == field
