"""Probability calibration fitted on validation predictions: isotonic (PAV), Platt and temperature scaling."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Literal

import numpy as np
from scipy.special import expit

from rankstack.evaluation.classification import log_loss

CalibrationKind = Literal["auto", "isotonic", "platt", "temperature", "none"]
_EPS = 1e-7


def logit(p: np.ndarray) -> np.ndarray:
    """log(p / (1 − p)) with p clipped to [1e-7, 1 − 1e-7]."""
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


def pool_adjacent_violators(y: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """Weighted least-squares non-decreasing fit to ``y`` (in the given order): argmin Σ w_i (f_i − y_i)², f ↑.

    Pool-adjacent-violators: scan left to right, merging the last two blocks while their means decrease.
    """
    y = np.asarray(y, dtype=np.float64)
    w = np.ones_like(y) if w is None else np.asarray(w, dtype=np.float64)
    means: list[float] = []
    weights: list[float] = []
    sizes: list[int] = []
    for value, weight in zip(y.tolist(), w.tolist(), strict=True):
        means.append(value)
        weights.append(weight)
        sizes.append(1)
        while len(means) > 1 and means[-2] > means[-1]:
            total = weights[-2] + weights[-1]
            merged = (means[-2] * weights[-2] + means[-1] * weights[-1]) / total
            size = sizes[-2] + sizes[-1]
            del means[-1], weights[-1], sizes[-1]
            means[-1], weights[-1], sizes[-1] = merged, total, size
    return np.repeat(np.array(means), np.array(sizes, dtype=np.int64))


class Calibrator(ABC):
    """Maps raw probabilities to calibrated ones; fit on held-out (validation) predictions only."""

    kind: ClassVar[str]

    @abstractmethod
    def fit(self, p: np.ndarray, y: np.ndarray) -> Calibrator:
        """Learn the map from predictions ``p`` and 0/1 labels ``y``; returns ``self``."""

    @abstractmethod
    def transform(self, p: np.ndarray) -> np.ndarray:
        """Calibrated probabilities."""

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable state (kind and parameters)."""


class IdentityCalibrator(Calibrator):
    """No calibration: p ↦ p."""

    kind = "none"

    def fit(self, p: np.ndarray, y: np.ndarray) -> IdentityCalibrator:
        """Nothing to learn."""
        return self

    def transform(self, p: np.ndarray) -> np.ndarray:
        """Returns ``p`` as float64."""
        return np.asarray(p, dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        """Just the kind."""
        return {"kind": self.kind}


class IsotonicCalibrator(Calibrator):
    """Non-decreasing step map fitted by PAV on predictions aggregated by distinct value;
    linear between adjacent blocks, constant beyond the fitted range.
    """

    kind = "isotonic"

    def __init__(self) -> None:
        self.x_: np.ndarray = np.array([0.0, 1.0])
        self.y_: np.ndarray = np.array([0.0, 1.0])

    def fit(self, p: np.ndarray, y: np.ndarray) -> IsotonicCalibrator:
        """PAV on the label means of each distinct prediction, weighted by their counts."""
        p = np.asarray(p, dtype=np.float64).ravel()
        y = np.asarray(y, dtype=np.float64).ravel()
        uniq, inverse, counts = np.unique(p, return_inverse=True, return_counts=True)
        means = np.bincount(inverse, weights=y) / counts
        fitted = pool_adjacent_violators(means, counts.astype(np.float64))
        change = np.r_[True, fitted[1:] != fitted[:-1], True]
        starts = np.flatnonzero(change[:-1])
        ends = np.r_[starts[1:], len(fitted)] - 1
        self.x_ = np.column_stack([uniq[starts], uniq[ends]]).ravel()
        self.y_ = np.repeat(fitted[starts], 2)
        return self

    def transform(self, p: np.ndarray) -> np.ndarray:
        """Interpolate the fitted knots; clipped to [1e-6, 1 − 1e-6] so a block without positives is not 0."""
        return np.clip(np.interp(np.asarray(p, dtype=np.float64), self.x_, self.y_), 1e-6, 1 - 1e-6)

    def to_dict(self) -> dict[str, Any]:
        """Knots."""
        return {"kind": self.kind, "x": self.x_.tolist(), "y": self.y_.tolist()}


class PlattCalibrator(Calibrator):
    """p ↦ σ(a·logit(p) + b), (a, b) minimising validation log-loss (Newton's method)."""

    kind = "platt"
    fit_bias: ClassVar[bool] = True

    def __init__(self) -> None:
        self.a_ = 1.0
        self.b_ = 0.0

    def fit(self, p: np.ndarray, y: np.ndarray) -> PlattCalibrator:
        """Newton iterations on the 2-parameter (or 1-parameter) logistic log-likelihood."""
        z = logit(np.asarray(p).ravel())
        y = np.asarray(y, dtype=np.float64).ravel()
        x = np.column_stack([z, np.ones_like(z)]) if self.fit_bias else z[:, None]
        theta = np.array([1.0, 0.0])[: x.shape[1]]
        for _ in range(50):
            mu = expit(x @ theta)
            grad = x.T @ (mu - y)
            hess = (x * (mu * (1 - mu))[:, None]).T @ x + 1e-9 * np.eye(x.shape[1])
            step = np.linalg.solve(hess, grad)
            theta = theta - step
            if np.max(np.abs(step)) < 1e-10:
                break
        self.a_ = float(theta[0])
        self.b_ = float(theta[1]) if self.fit_bias else 0.0
        return self

    def transform(self, p: np.ndarray) -> np.ndarray:
        """σ(a·logit(p) + b)."""
        return expit(self.a_ * logit(p) + self.b_)

    def to_dict(self) -> dict[str, Any]:
        """Slope and intercept."""
        return {"kind": self.kind, "a": self.a_, "b": self.b_}


class TemperatureCalibrator(PlattCalibrator):
    """Temperature scaling p ↦ σ(logit(p) / T), with 1/T = a fitted like Platt without intercept."""

    kind = "temperature"
    fit_bias = False

    @property
    def temperature(self) -> float:
        """T = 1 / a."""
        return 1.0 / self.a_


CALIBRATORS: dict[str, type[Calibrator]] = {
    cls.kind: cls for cls in (IdentityCalibrator, IsotonicCalibrator, PlattCalibrator, TemperatureCalibrator)
}


def calibrator_from_dict(state: dict[str, Any]) -> Calibrator:
    """Rebuild a calibrator from :meth:`Calibrator.to_dict`."""
    kind = state.get("kind")
    if kind not in CALIBRATORS:
        raise ValueError(f"unknown calibrator kind {kind!r}; expected one of {sorted(CALIBRATORS)}")
    cal = CALIBRATORS[kind]()
    if isinstance(cal, IsotonicCalibrator):
        cal.x_, cal.y_ = np.asarray(state["x"], dtype=np.float64), np.asarray(state["y"], dtype=np.float64)
    elif isinstance(cal, PlattCalibrator):
        cal.a_, cal.b_ = float(state["a"]), float(state["b"])
    return cal


def fit_calibrator(kind: CalibrationKind, p: np.ndarray, y: np.ndarray, *, seed: int = 0) -> Calibrator:
    """Fit the named calibrator; ``auto`` fits isotonic and Platt on one random half, keeps the one with
    the lower log-loss on the other half, and refits it on everything.
    """
    p = np.asarray(p, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if kind != "auto":
        if kind not in CALIBRATORS:
            raise ValueError(f"unknown calibration {kind!r}; expected auto or one of {sorted(CALIBRATORS)}")
        return CALIBRATORS[kind]().fit(p, y)
    half = np.random.default_rng(seed).random(len(p)) < 0.5
    best, best_loss = "platt", np.inf
    for name in ("isotonic", "platt"):
        if y[half].min(initial=1) == y[half].max(initial=0) or y[~half].min(initial=1) == y[~half].max(initial=0):
            break
        loss = log_loss(y[~half], CALIBRATORS[name]().fit(p[half], y[half]).transform(p[~half]))
        if loss < best_loss:
            best, best_loss = name, loss
    return CALIBRATORS[best]().fit(p, y)
