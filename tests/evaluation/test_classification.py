"""AUC, log-loss and calibration error against scikit-learn and hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import log_loss as sk_log_loss
from sklearn.metrics import roc_auc_score

from rankstack.evaluation.classification import (
    expected_calibration_error,
    log_loss,
    midranks,
    reliability_curve,
    roc_auc,
)


def test_auc_by_hand() -> None:
    # positives 0.8, 0.4; negatives 0.4, 0.1: pairs (0.8>0.4) (0.8>0.1) (0.4=0.4 → ½) (0.4>0.1) → 3.5 / 4
    assert roc_auc(np.array([1, 1, 0, 0]), np.array([0.8, 0.4, 0.4, 0.1])) == pytest.approx(0.875)
    assert roc_auc(np.array([0, 1]), np.array([0.2, 0.9])) == 1.0
    assert roc_auc(np.array([1, 0]), np.array([0.2, 0.9])) == 0.0
    assert roc_auc(np.array([1, 0, 1, 0]), np.ones(4)) == 0.5


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 1), st.integers(0, 6)), min_size=2, max_size=80).filter(
        lambda rows: len({y for y, _ in rows}) == 2
    )
)
def test_auc_matches_sklearn_with_many_ties(rows: list[tuple[int, int]]) -> None:
    y = np.array([r[0] for r in rows])
    s = np.array([r[1] for r in rows], dtype=np.float64)
    assert roc_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_auc_matches_sklearn_on_continuous_scores() -> None:
    rng = np.random.default_rng(0)
    y = rng.random(5_000) < 0.1
    s = rng.standard_normal(5_000) + y
    assert roc_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_auc_rejects_a_single_class_and_bad_input() -> None:
    with pytest.raises(ValueError, match="one class"):
        roc_auc(np.zeros(3), np.arange(3.0))
    with pytest.raises(ValueError, match="length"):
        roc_auc(np.array([0, 1]), np.arange(3.0))
    with pytest.raises(ValueError, match="0 or 1"):
        roc_auc(np.array([0, 2]), np.arange(2.0))


def test_midranks_average_ties() -> None:
    np.testing.assert_allclose(midranks(np.array([3.0, 1.0, 3.0, 2.0])), [3.5, 1.0, 3.5, 2.0])


def test_log_loss_matches_sklearn() -> None:
    rng = np.random.default_rng(1)
    p = rng.uniform(0.01, 0.99, 300)
    y = (rng.random(300) < p).astype(int)
    assert log_loss(y, p) == pytest.approx(sk_log_loss(y, p), rel=1e-10)
    assert log_loss(np.array([1, 0]), np.array([1.0, 0.0])) == pytest.approx(0.0, abs=1e-9)


def test_ece_by_hand_and_zero_for_perfect_bins() -> None:
    y = np.array([0, 0, 1, 1])
    p = np.array([0.2, 0.2, 0.6, 0.6])
    # two equal-count bins: |0 − 0.2| and |1 − 0.6| → ½·0.2 + ½·0.4
    assert expected_calibration_error(y, p, n_bins=2) == pytest.approx(0.3)
    assert expected_calibration_error(np.array([0, 1, 0, 1]), np.full(4, 0.5), n_bins=1) == pytest.approx(0.0)
    curve = reliability_curve(y, p, n_bins=10, strategy="uniform")
    assert curve.count.tolist() == [2, 2] and curve.observed_rate.tolist() == [0.0, 1.0]


def test_ece_of_true_probabilities_is_small() -> None:
    rng = np.random.default_rng(2)
    p = rng.beta(1, 15, 200_000)
    y = rng.random(p.size) < p
    assert expected_calibration_error(y, p) < 0.003
    assert expected_calibration_error(y, np.clip(p * 1.5, 0, 1)) > 0.02
