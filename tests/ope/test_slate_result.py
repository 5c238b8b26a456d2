"""The percentile bootstrap of the slate estimates: seeded, nested by level, and honest about its coverage."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rankstack.ope.slate_result import bootstrap_interval, bootstrap_means, summarize


def test_the_same_seed_gives_the_same_interval() -> None:
    values = np.random.default_rng(0).exponential(size=200)
    assert bootstrap_interval(values, seed=4) == bootstrap_interval(values, seed=4)
    assert bootstrap_interval(values, seed=4) != bootstrap_interval(values, seed=5)


def test_resamples_in_blocks_match_one_block(monkeypatch: pytest.MonkeyPatch) -> None:
    values = np.arange(50, dtype=float)
    whole = bootstrap_means(values, 40, seed=1)
    monkeypatch.setattr("rankstack.ope.slate_result._BLOCK_CELLS", 50 * 7)
    assert np.allclose(bootstrap_means(values, 40, seed=1)[:7], whole[:7])
    assert len(bootstrap_means(values, 40, seed=1)) == 40


def test_a_wider_level_gives_a_wider_interval() -> None:
    values = np.random.default_rng(1).normal(size=300)
    low50, high50, _ = bootstrap_interval(values, level=0.5)
    low95, high95, _ = bootstrap_interval(values, level=0.95)
    assert low95 < low50 < values.mean() < high50 < high95


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=40))
def test_the_interval_lies_within_the_values(values: list[float]) -> None:
    arr = np.array(values)
    low, high, std = bootstrap_interval(arr, n_boot=100)
    assert arr.min() - 1e-9 <= low <= high <= arr.max() + 1e-9
    assert std >= 0


def test_coverage_is_near_the_level() -> None:
    """Means of 100 exponential draws, 200 repetitions: the 90% interval holds the true mean 1 about 90% of the time."""
    rng = np.random.default_rng(7)
    hits = [low <= 1.0 <= high for low, high, _ in
            (bootstrap_interval(rng.exponential(size=100), level=0.9, n_boot=300, seed=s) for s in range(200))]
    assert 0.8 <= np.mean(hits) <= 0.97


def test_the_summary_diagnostics() -> None:
    est = summarize("x", np.array([2.0, 0.0, 4.0, 0.0]), np.array([2.0, 0.0, 2.0, 0.0]), n_boot=50)
    assert est.value == 1.5 and est.max_weight == 2.0 and est.zero_weight_share == 0.5
    assert est.ess == pytest.approx(16 / 8)
    assert est.as_dict()["estimator"] == "x"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"level": 1.0}, "level must be in \\(0, 1\\)"),
    ({"n_boot": 0}, "n_boot must be at least 1"),
])
def test_bad_bootstrap_settings(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        bootstrap_interval(np.ones(3), **kwargs)  # type: ignore[arg-type]


def test_an_empty_log_cannot_be_bootstrapped() -> None:
    with pytest.raises(ValueError, match="empty log"):
        bootstrap_means(np.array([]), 10, 0)
