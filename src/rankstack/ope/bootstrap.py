"""Non-parametric bootstrap over logged rounds: percentile confidence intervals for any estimator."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from rankstack.ope.estimators import Estimator
from rankstack.ope.feedback import OffPolicyData


@dataclass(frozen=True)
class Interval:
    """A point estimate on the whole log, its bootstrap replicates and the percentile interval [lo, hi]."""

    estimate: float
    replicates: np.ndarray
    lo: float
    hi: float


def percentile_interval(replicates: np.ndarray, alpha: float) -> tuple[float, float]:
    """The (α/2, 1 − α/2) quantiles of the replicates (Efron's percentile interval)."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    lo, hi = np.quantile(replicates, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def resample_indices(n: int, n_boot: int, seed: int) -> list[np.ndarray]:
    """``n_boot`` resamples of ``range(n)`` with replacement, from one seeded generator."""
    if n_boot < 1:
        raise ValueError(f"the number of bootstrap resamples must be at least 1, got {n_boot}")
    rng = np.random.default_rng(seed)
    return [rng.integers(0, n, size=n) for _ in range(n_boot)]


def bootstrap(
    estimators: Sequence[Estimator],
    data: OffPolicyData,
    *,
    n_boot: int = 200,
    alpha: float = 0.05,
    seed: int = 0,
    refit: Callable[[OffPolicyData], OffPolicyData] | None = None,
) -> dict[str, Interval]:
    """Every estimator on ``data`` and on ``n_boot`` resamples of its rounds, with (1 − α) percentile intervals.

    ``refit`` (optional) rebuilds a resample's reward-model estimates before estimating (cross-fitting per resample),
    so the interval also covers the reward model's variance.
    """
    full = refit(data) if refit else data
    points = {e.name: e.estimate(full) for e in estimators}
    reps: dict[str, list[float]] = {e.name: [] for e in estimators}
    for index in resample_indices(data.n_rounds, n_boot, seed):
        sample = data.take(index)
        sample = refit(sample) if refit else sample
        for e in estimators:
            reps[e.name].append(e.estimate(sample))
    out = {}
    for name, values in reps.items():
        array = np.asarray(values)
        lo, hi = percentile_interval(array, alpha)
        out[name] = Interval(points[name], array, lo, hi)
    return out
