"""Weight sweeps of a value objective and the Pareto front of the outcomes (e.g. revenue vs clicks vs NDCG)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rankstack.plotting import save_figure
from rankstack.value.objective import ValueObjective


@dataclass(frozen=True)
class SweepPoint:
    """One weight setting and the metrics its ranking achieved."""

    weight: float
    objective: str
    metrics: dict[str, float]


def sweep_weights(
    objective: ValueObjective, term: int, weights: Sequence[float],
    evaluate: Callable[[ValueObjective], dict[str, float]],
) -> list[SweepPoint]:
    """Evaluate ``objective`` with term ``term``'s weight set to each of ``weights``."""
    if not 0 <= term < len(objective.terms):
        raise IndexError(f"objective has {len(objective.terms)} terms, no term {term}")
    points = []
    for weight in weights:
        variant = objective.with_weight(term, float(weight))
        points.append(SweepPoint(float(weight), variant.describe(), evaluate(variant)))
    return points


def pareto_mask(values: np.ndarray) -> np.ndarray:
    """Bool [n]: row i is not dominated, i.e. no row is ≥ in every column (higher is better) and > in one."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2:
        raise ValueError(f"values must be [n_points, n_metrics], got {v.shape}")
    ge = (v[:, None, :] >= v[None, :, :]).all(axis=2)
    gt = (v[:, None, :] > v[None, :, :]).any(axis=2)
    dominated = (ge & gt).any(axis=0)
    return np.asarray(~dominated, dtype=bool)


def plot_pareto(points: Sequence[SweepPoint], path: str | Path, *, x: str = "clicks_per_mille",
                y: str = "revenue_per_mille", color: str | None = "ndcg", title: str = "") -> Path:
    """Scatter ``y`` against ``x`` (colour = ``color``), labelled by weight; the Pareto front is joined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [x, y] + ([color] if color else [])
    values = np.array([[p.metrics[k] for k in keys] for p in points])
    front = pareto_mask(values)
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    scatter = ax.scatter(values[:, 0], values[:, 1], c=values[:, 2] if color else None, cmap="viridis", s=40,
                         zorder=3)
    order = np.argsort(values[front, 0])
    ax.plot(values[front, 0][order], values[front, 1][order], "k--", lw=1, zorder=2, label="Pareto front")
    for p, vx, vy in zip(points, values[:, 0], values[:, 1], strict=True):
        ax.annotate(f"{p.weight:g}", (vx, vy), textcoords="offset points", xytext=(4, 4), fontsize=7)
    if color:
        fig.colorbar(scatter, ax=ax, label=color)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(title or "value-model weight sweep (label = click weight)")
    ax.legend(loc="best", fontsize=8)
    return save_figure(fig, path)
