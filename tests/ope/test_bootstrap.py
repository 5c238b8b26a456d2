"""Bootstrap intervals: seeded, they bracket the estimate, and they are exact when every round is the same."""

from __future__ import annotations

import numpy as np
import pytest

from rankstack.ope.bootstrap import bootstrap, percentile_interval, resample_indices
from rankstack.ope.estimators import IPS, SNIPS
from rankstack.ope.feedback import OffPolicyData


def log(rewards: np.ndarray) -> OffPolicyData:
    """A uniform two-action log evaluated under a policy that prefers action 0."""
    n = len(rewards)
    return OffPolicyData(rewards, np.arange(n) % 2, np.zeros(n, dtype=int), np.full(n, 0.5),
                         np.array([[[0.7], [0.3]]]))


def test_interval_brackets_estimate_and_is_seeded():
    rng = np.random.default_rng(0)
    data = log(rng.integers(0, 2, 400).astype(float))
    a = bootstrap([IPS(), SNIPS()], data, n_boot=50, seed=3)
    b = bootstrap([IPS(), SNIPS()], data, n_boot=50, seed=3)
    assert np.array_equal(a["ips"].replicates, b["ips"].replicates)
    for interval in a.values():
        assert interval.lo <= interval.estimate <= interval.hi and interval.lo < interval.hi
        assert len(interval.replicates) == 50


def test_constant_log_gives_a_point_interval():
    data = OffPolicyData(np.ones(20), np.zeros(20, dtype=int), np.zeros(20, dtype=int), np.full(20, 0.5),
                         np.array([[[0.5], [0.5]]]))
    result = bootstrap([IPS()], data, n_boot=10)["ips"]
    assert result.estimate == result.lo == result.hi == pytest.approx(1.0)


def test_refit_runs_on_every_sample():
    calls = []

    def refit(d: OffPolicyData) -> OffPolicyData:
        calls.append(d.n_rounds)
        return d

    bootstrap([IPS()], log(np.ones(10)), n_boot=4, refit=refit)
    assert calls == [10] * 5


@pytest.mark.parametrize(("call", "message"), [
    (lambda: resample_indices(5, 0, 0), "at least 1"),
    (lambda: percentile_interval(np.ones(3), 1.5), "alpha"),
])
def test_bad_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call()
