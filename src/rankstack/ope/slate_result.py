"""What a slate estimator returns: the estimate, its bootstrap interval and the diagnostics of its weights."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# resamples drawn at once: keeps the index block under ~80 MB whatever the log's size
_BLOCK_CELLS = 10_000_000


@dataclass(frozen=True)
class SlateEstimate:
    """An estimate of the evaluated policy's expected slate reward (the sum of its slot rewards) per round.

    ``lower`` / ``upper``: the percentile bootstrap interval at ``level``; ``std_error``: the bootstrap standard
    deviation. ``max_weight`` and ``ess`` (Kish's effective sample size, (Σw)² / Σw², of the slate-level weight the
    estimator uses) say how far the log is from the evaluated policy; ``zero_weight_share`` is the share of
    rounds whose weight is 0 (the evaluated policy would not show the logged slate), ``support_deficit`` the mean
    share of the evaluated policy's (item, slot) mass that the logging policy can never show (NaN when the logging
    policy's distribution was not given).
    """

    estimator: str
    value: float
    lower: float
    upper: float
    level: float
    std_error: float
    n_rounds: int
    max_weight: float
    ess: float
    zero_weight_share: float
    support_deficit: float

    def as_dict(self) -> dict[str, float | int | str]:
        """The fields as a plain dict (JSON-ready)."""
        return dict(self.__dict__)


def bootstrap_means(values: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """Means of ``n_boot`` resamples of ``values`` with replacement [n_boot]; the same seed gives the same means."""
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    if n == 0:
        raise ValueError("cannot bootstrap an empty log (0 rounds)")
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    rng = np.random.default_rng(seed)
    out = np.empty(n_boot)
    block = max(1, _BLOCK_CELLS // n)
    for start in range(0, n_boot, block):
        stop = min(start + block, n_boot)
        out[start:stop] = values[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    return out


def bootstrap_interval(values: np.ndarray, *, level: float = 0.95, n_boot: int = 1000, seed: int = 0
                       ) -> tuple[float, float, float]:
    """(lower, upper, std) of the mean of ``values`` by the percentile bootstrap: resample rounds with replacement
    ``n_boot`` times, take the (1 − level)/2 and (1 + level)/2 quantiles of the resampled means."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    means = bootstrap_means(values, n_boot, seed)
    lower, upper = np.quantile(means, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return float(lower), float(upper), float(means.std(ddof=1)) if n_boot > 1 else 0.0


def summarize(estimator: str, values: np.ndarray, weights: np.ndarray, *, support_deficit: float = float("nan"),
              level: float = 0.95, n_boot: int = 1000, seed: int = 0) -> SlateEstimate:
    """The estimate (mean of the per-round ``values``), its bootstrap interval and the diagnostics of ``weights``
    (one slate-level weight per round)."""
    lower, upper, std = bootstrap_interval(values, level=level, n_boot=n_boot, seed=seed)
    w = np.asarray(weights, dtype=np.float64)
    square = float((w**2).sum())
    return SlateEstimate(
        estimator=estimator, value=float(np.mean(values)), lower=lower, upper=upper, level=level, std_error=std,
        n_rounds=len(values), max_weight=float(np.abs(w).max()), ess=float(w.sum() ** 2 / square) if square else 0.0,
        zero_weight_share=float(np.mean(w == 0.0)), support_deficit=support_deficit,
    )
