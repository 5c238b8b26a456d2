"""Exploratory: two other reductions of SASRec's vectors in ``online_representation.py``'s closed loop (issue 18).

``centred``: the projection fitted on the centred item matrix (PCA), applied to the items minus their mean and to
the raw user states. ``normed``: the uncentred projection without unit rows (each side scaled by its largest
entry, so the vectors' norms survive). Only the two SASRec variants run; the rest of the loop is unchanged.

Usage: OMP_NUM_THREADS=1 python benchmarks/online_representation_variants.py centred|normed [loop options]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import online_representation as bench  # type: ignore[import-not-found]

from rankstack.bandits.pool_stats import quantize
from rankstack.experiments import policy_representation
from rankstack.ranking.candidate_features import unit_rows


def centred(users: np.ndarray, items: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """PCA of the item vectors, applied to centred items and raw user states, then unit rows."""
    mean = items.mean(axis=0)
    proj = policy_representation.item_projection(items - mean, dim)
    x, y = np.zeros((len(users), dim)), np.zeros((len(items), dim))
    x[:, :proj.shape[1]], y[:, :proj.shape[1]] = users @ proj, (items - mean) @ proj
    return quantize(unit_rows(x)).astype(np.int16), quantize(unit_rows(y)).astype(np.int16)


def normed(users: np.ndarray, items: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """The uncentred projection, each side divided by its largest magnitude instead of unit rows."""
    proj = policy_representation.item_projection(items, dim)
    x, y = np.zeros((len(users), dim)), np.zeros((len(items), dim))
    x[:, :proj.shape[1]], y[:, :proj.shape[1]] = users @ proj, items @ proj
    return quantize(x / np.abs(x).max()).astype(np.int16), quantize(y / np.abs(y).max()).astype(np.int16)


if __name__ == "__main__":
    which = sys.argv.pop(1)
    policy_representation.project_vectors = {"centred": centred, "normed": normed}[which]
    bench.VARIANTS = [v for v in bench.VARIANTS if v[2] == "sasrec"]
    bench.RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / f"representation-{which}"
    bench.main()
