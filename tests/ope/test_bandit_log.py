"""Canonical impression/click events become rounds with joined rewards; missing fields are named."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from rankstack.errors import DataValidationError
from rankstack.ope.bandit_log import bandit_log_from_events, one_hot_features


def events(**changes) -> pl.DataFrame:
    """Two requests of two slots; item "b" is clicked in request r1 only."""
    base = {
        "user_id": ["u", "u", "v", "v", "u"],
        "item_id": ["a", "b", "b", "c", "b"],
        "event": ["impression", "impression", "impression", "impression", "click"],
        "request_id": ["r1", "r1", "r2", "r2", "r1"],
        "position": [0, 1, 0, 1, None],
        "propensity": [0.5, 0.25, 0.5, 0.25, None],
        "segment": ["x", "x", "y", "y", "x"],
    }
    return pl.DataFrame({**base, **changes})


def test_rounds_rewards_and_context():
    log = bandit_log_from_events(events(), source="t", context_columns=["segment"],
                                 item_features=pl.DataFrame({"item_id": ["a", "b", "c"], "kind": ["s", "t", "s"]}))
    assert log.items.tolist() == ["a", "b", "c"]
    assert log.action.tolist() == [0, 1, 1, 2]
    assert log.reward.tolist() == [0.0, 1.0, 0.0, 0.0]
    assert log.position.tolist() == [0, 1, 0, 1] and log.n_slots == 2
    assert log.pscore.tolist() == [0.5, 0.25, 0.5, 0.25]
    assert log.context.tolist() == [[1, 0], [1, 0], [0, 1], [0, 1]]
    assert log.action_features is not None and log.action_features.tolist() == [[1, 0], [0, 1], [1, 0]]


@pytest.mark.parametrize(("changes", "kwargs", "message"), [
    ({"propensity": [0.5, None, 0.5, 0.25, None]}, {}, "impression 1 has no propensity"),
    ({"position": [0, 1, -1, 1, None]}, {}, "impression 2 has a negative position"),
    ({}, {"items": ["a", "b"]}, "impression 3: item 'c' is not on the action axis"),
    ({"event": ["click"] * 5}, {}, "no impression events"),
])
def test_bad_logs_are_named(changes, kwargs, message):
    with pytest.raises(DataValidationError, match=message):
        bandit_log_from_events(events(**changes), source="t", **kwargs)


def test_missing_columns_are_listed():
    with pytest.raises(DataValidationError, match=r"needs column\(s\) \['propensity'\]"):
        bandit_log_from_events(events().drop("propensity"), source="t")


def test_one_hot_keeps_numbers():
    out = one_hot_features(pl.DataFrame({"n": [1.5, 2.0], "s": ["p", "q"]}))
    assert out.tolist() == [[1.5, 1, 0], [2.0, 0, 1]]
    assert one_hot_features(pl.DataFrame({"n": [1, 2]}).select([])).shape == (0, 0)
    assert np.asarray(one_hot_features(pl.DataFrame())).shape == (0, 0)
