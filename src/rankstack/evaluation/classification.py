"""Metrics of probabilistic binary predictions (click, conversion): AUC, log-loss, calibration error.

All are pure numpy functions of labels ``y`` (0/1) and scores or probabilities ``p`` of the same length.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

BinStrategy = Literal["quantile", "uniform"]


def _pair(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validated 1-D float copies of labels and predictions."""
    y = np.asarray(y, dtype=np.float64).ravel()
    p = np.asarray(p, dtype=np.float64).ravel()
    if y.shape != p.shape:
        raise ValueError(f"labels ({y.size}) and predictions ({p.size}) differ in length")
    if y.size == 0:
        raise ValueError("no predictions to score")
    if np.isnan(p).any():
        raise ValueError("predictions contain NaN")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("labels must be 0 or 1")
    return y, p


def midranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x`` in ascending order; tied values share the mean of their ranks."""
    x = np.asarray(x).ravel()
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    ends = np.r_[starts[1:], len(x)]
    mean_rank = (starts + ends + 1) / 2.0  # mean of ranks starts+1 .. ends
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def roc_auc(y: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve via Mann–Whitney: AUC = (Σ_{i∈pos} R_i − n₊(n₊+1)/2) / (n₊·n₋),

    with R the mid-ranks of all scores (ties count ½). Equals P(score of a random positive > a random
    negative) + ½·P(tie). Raises ValueError when only one class is present.
    """
    y, s = _pair(y, scores)
    n_pos = float(y.sum())
    n_neg = float(len(y) - n_pos)
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUC is undefined with only one class in the labels")
    rank_sum = float(midranks(s)[y == 1].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def log_loss(y: np.ndarray, p: np.ndarray, eps: float = 1e-12) -> float:
    """Mean binary cross-entropy: −(1/n) Σ [y·log p + (1 − y)·log(1 − p)], p clipped to [eps, 1 − eps]."""
    y, p = _pair(y, p)
    p = np.clip(p, eps, 1.0 - eps)
    return float(-np.mean(y * np.log(p) + (1.0 - y) * np.log1p(-p)))


@dataclass(frozen=True)
class ReliabilityCurve:
    """Per bin: mean prediction, observed rate and count (empty bins dropped)."""

    mean_predicted: np.ndarray
    observed_rate: np.ndarray
    count: np.ndarray


def reliability_curve(
    y: np.ndarray, p: np.ndarray, n_bins: int = 20, strategy: BinStrategy = "quantile"
) -> ReliabilityCurve:
    """Bin predictions (equal-count ``quantile`` bins or equal-width ``uniform`` bins on [0, 1])."""
    y, p = _pair(y, p)
    if n_bins < 1:
        raise ValueError("n_bins must be ≥ 1")
    if strategy == "quantile":
        order = np.argsort(p, kind="mergesort")
        bins = np.empty(len(p), dtype=np.int64)
        bins[order] = np.arange(len(p)) * n_bins // len(p)
    elif strategy == "uniform":
        bins = np.minimum((np.clip(p, 0.0, 1.0) * n_bins).astype(np.int64), n_bins - 1)
    else:
        raise ValueError(f"unknown binning strategy {strategy!r}; expected quantile or uniform")
    count = np.bincount(bins, minlength=n_bins).astype(np.float64)
    keep = count > 0
    mean_p = np.bincount(bins, weights=p, minlength=n_bins)[keep] / count[keep]
    rate = np.bincount(bins, weights=y, minlength=n_bins)[keep] / count[keep]
    return ReliabilityCurve(mean_p, rate, count[keep].astype(np.int64))


def expected_calibration_error(
    y: np.ndarray, p: np.ndarray, n_bins: int = 20, strategy: BinStrategy = "quantile"
) -> float:
    """ECE = Σ_b (n_b / n)·|ȳ_b − p̄_b| over bins b (default: 20 equal-count bins of the predictions).

    Equal-count bins keep rare events (CTR of a few percent) spread over many bins; equal-width bins
    would put almost everything in the first bin.
    """
    curve = reliability_curve(y, p, n_bins, strategy)
    weights = curve.count / curve.count.sum()
    return float(np.sum(weights * np.abs(curve.observed_rate - curve.mean_predicted)))
