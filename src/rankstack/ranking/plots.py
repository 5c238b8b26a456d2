"""Reliability diagrams: observed rate against mean prediction per bin, one line per model or calibration."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from rankstack.evaluation.classification import expected_calibration_error, reliability_curve
from rankstack.plotting import save_figure


def plot_reliability(series: Mapping[str, tuple[np.ndarray, np.ndarray]], path: str | Path, *, title: str = "",
                     n_bins: int = 20) -> Path:
    """One reliability curve per ``label → (labels, predictions)`` on log-log axes (ECE in the legend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 5.0))
    lo, hi = 1.0, 0.0
    for label, (y, p) in series.items():
        curve = reliability_curve(y, p, n_bins)
        ece = expected_calibration_error(y, p, n_bins)
        ax.plot(curve.mean_predicted, np.maximum(curve.observed_rate, 1e-5), "o-", ms=3,
                label=f"{label} (ECE {ece:.4f})")
        lo = min(lo, float(curve.mean_predicted.min()))
        hi = max(hi, float(curve.mean_predicted.max()))
    lo, hi = max(lo * 0.8, 1e-5), min(hi * 1.25, 1.0)
    ax.plot([lo, hi], [lo, hi], "k:", lw=1, label="perfect")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"mean predicted probability ({n_bins} equal-count bins)")
    ax.set_ylabel("observed rate")
    ax.set_title(title or "reliability")
    ax.legend(fontsize=7, loc="upper left")
    return save_figure(fig, path)
