"""Slate estimators on a bandit log: requests grouped into slates, incomplete ones left out and counted, values by
hand for a uniform logger and a deterministic target."""

from __future__ import annotations

import numpy as np
import pytest

from rankstack.ope.bandit_log import BanditLog
from rankstack.ope.slate_value import estimate_slate_value, slate_rounds

M, K = 4, 2


def log(requests: list[str], positions: list[int], actions: list[int], rewards: list[float]) -> BanditLog:
    """A uniform logger over 4 actions (per-slot propensity 1/4), 2 slots."""
    n = len(requests)
    return BanditLog(reward=np.array(rewards), action=np.array(actions), position=np.array(positions),
                     pscore=np.full(n, 1 / M), context=np.zeros((n, 0)), items=np.arange(M), n_slots=K,
                     request_ids=np.array(requests))


GOOD = log(["a", "a", "b", "b", "c"], [0, 1, 1, 0, 0], [0, 1, 2, 3, 1], [1.0, 0.0, 1.0, 1.0, 0.0])


def test_complete_requests_in_slot_order() -> None:
    index, dropped = slate_rounds(GOOD)
    assert index.tolist() == [[0, 1], [3, 2]] and dropped == 1  # request c fills slot 0 only


def test_no_complete_slate_is_an_error() -> None:
    with pytest.raises(ValueError, match="no complete slates"):
        slate_rounds(log(["a", "b"], [0, 0], [0, 1], [1.0, 0.0]))
    with pytest.raises(ValueError, match="request_id"):
        slate_rounds(BanditLog(np.ones(1), np.zeros(1, np.int64), np.zeros(1, np.int64), np.ones(1),
                               np.zeros((1, 0)), np.arange(1), 1))


def test_values_by_hand() -> None:
    """Target: action 0 at slot 0, action 1 at slot 1, for sure."""
    dist = np.zeros((1, M, K))
    dist[0, 0, 0] = dist[0, 1, 1] = 1.0
    out = estimate_slate_value(GOOD, dist, logger_uniform=True, n_boot=20, seed=0)
    assert out["requests"] == 2 and out["incomplete_requests"] == 1
    est = out["estimators"]
    # request a shows the target's slate exactly: IIPS 4·1 + 4·0; request b none of it
    assert est["independent IPS"]["estimate"] == pytest.approx((4 * 1 + 4 * 0) / 2)
    # standard IPS: whole-slate weight 1 / (1/4 · 1/3) = 12 on request a (reward 1)
    assert est["standard IPS"]["estimate"] == pytest.approx(12 * 1 / 2)
    assert {"PI", "reward-interaction IPS"} <= set(est)
    assert est["independent IPS"]["support_deficit"] == 0.0
    unknown_logger = estimate_slate_value(GOOD, dist, logger_uniform=False, n_boot=20, seed=0)["estimators"]
    assert set(unknown_logger) == {"independent IPS", "PI"}  # PI reads 1/m off the propensities; no prefixes
