"""Calibrators: PAV against scikit-learn's isotonic regression, Platt / temperature recover known maps."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.isotonic import IsotonicRegression

from rankstack.evaluation.classification import expected_calibration_error
from rankstack.ranking.calibration import (
    IsotonicCalibrator,
    PlattCalibrator,
    TemperatureCalibrator,
    calibrator_from_dict,
    fit_calibrator,
    logit,
    pool_adjacent_violators,
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-5, 5, allow_nan=False), min_size=1, max_size=60),
       st.randoms(use_true_random=False))
def test_pav_is_monotone_and_matches_sklearn(values: list[float], rnd) -> None:  # type: ignore[no-untyped-def]
    y = np.array(values)
    w = np.array([rnd.uniform(0.5, 2.0) for _ in values])
    fitted = pool_adjacent_violators(y, w)
    assert (np.diff(fitted) >= -1e-12).all()
    expected = IsotonicRegression().fit(np.arange(len(y)), y, sample_weight=w).predict(np.arange(len(y)))
    np.testing.assert_allclose(fitted, expected, atol=1e-9)
    assert np.sum(w * fitted) == pytest.approx(np.sum(w * y))  # block means preserve the weighted total


def test_isotonic_calibrator_matches_sklearn_at_the_fitted_points() -> None:
    rng = np.random.default_rng(0)
    p = rng.random(2_000)
    y = (rng.random(2_000) < p**2).astype(float)
    cal = IsotonicCalibrator().fit(p, y)
    ref = IsotonicRegression(out_of_bounds="clip").fit(p, y)
    np.testing.assert_allclose(cal.transform(p), np.clip(ref.predict(p), 1e-6, 1 - 1e-6), atol=1e-9)
    grid = np.linspace(-0.5, 1.5, 50)
    assert (np.diff(cal.transform(grid)) >= 0).all()


def _skewed(n: int, a: float, b: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Raw scores p whose true probability is σ(a·logit(p) + b)."""
    rng = np.random.default_rng(seed)
    p = 1 / (1 + np.exp(-rng.normal(-2, 1.2, n)))
    truth = 1 / (1 + np.exp(-(a * logit(p) + b)))
    return p, (rng.random(n) < truth).astype(float)


def test_platt_recovers_slope_and_intercept() -> None:
    p, y = _skewed(100_000, 0.7, -0.5)
    cal = PlattCalibrator().fit(p, y)
    assert cal.a_ == pytest.approx(0.7, abs=0.05) and cal.b_ == pytest.approx(-0.5, abs=0.1)
    assert expected_calibration_error(y, cal.transform(p)) < expected_calibration_error(y, p)


def test_temperature_has_no_intercept() -> None:
    p, y = _skewed(50_000, 0.5, 0.0)
    cal = TemperatureCalibrator().fit(p, y)
    assert cal.b_ == 0.0 and cal.temperature == pytest.approx(2.0, rel=0.15)


@pytest.mark.parametrize("kind", ["auto", "isotonic", "platt", "temperature", "none"])
def test_every_calibrator_round_trips_through_its_dict(kind: str) -> None:
    p, y = _skewed(5_000, 1.3, 0.4, seed=3)
    cal = fit_calibrator(kind, p, y)  # type: ignore[arg-type]
    again = calibrator_from_dict(cal.to_dict())
    np.testing.assert_allclose(again.transform(p), cal.transform(p))


def test_unknown_calibration_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown calibration"):
        fit_calibrator("magic", np.array([0.1, 0.9]), np.array([0, 1]))  # type: ignore[arg-type]
