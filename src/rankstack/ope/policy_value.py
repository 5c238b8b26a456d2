"""Estimate one evaluation policy's value from a log with every estimator, bootstrap intervals and errors.

Protocol (obp's evaluation of OPE on the Open Bandit Dataset, Saito et al. 2021): on the whole log and on each of
``n_boot`` bootstrap resamples of its rounds, cross-fit the reward model on that sample and run every estimator.
The point estimate is the whole log's; the interval is the resamples' percentile interval; with a ground truth
(the evaluated policy's on-policy mean reward from its own log), the relative error |V̂ − V| / V is reported as its
mean and standard deviation over the resamples.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from rankstack.ope.bandit_log import BanditLog
from rankstack.ope.bootstrap import percentile_interval, resample_indices
from rankstack.ope.estimators import NEEDS_EMBEDDING, NEEDS_REWARD_MODEL, Estimator
from rankstack.ope.feedback import OffPolicyData, support_report
from rankstack.ope.reward_models import RewardModel, cross_fit
from rankstack.progress import track


def off_policy_data(
    log: BanditLog,
    action_dist: np.ndarray,
    *,
    make_model: Callable[[], RewardModel] | None,
    folds: int = 3,
    seed: int = 0,
    behavior_dist: np.ndarray | None = None,
    action_embedding: np.ndarray | None = None,
) -> OffPolicyData:
    """The estimators' inputs for ``log`` and the evaluated policy, with cross-fitted q̂ when a model is given."""
    q = cross_fit(make_model, log, folds=folds, seed=seed) if make_model else None
    return OffPolicyData(log.reward, log.action, log.position, log.pscore, action_dist, q, behavior_dist,
                         action_embedding)


def _usable(estimators: Sequence[Estimator], has_model: bool, has_embedding: bool) -> list[Estimator]:
    """The estimators whose inputs are available."""
    return [e for e in estimators if (has_model or e.name not in NEEDS_REWARD_MODEL)
            and (has_embedding or e.name not in NEEDS_EMBEDDING)]


def estimate_policy_value(
    log: BanditLog,
    action_dist: np.ndarray,
    estimators: Sequence[Estimator],
    *,
    make_model: Callable[[], RewardModel] | None,
    n_boot: int = 30,
    seed: int = 0,
    alpha: float = 0.05,
    folds: int = 3,
    ground_truth: float | None = None,
    behavior_dist: np.ndarray | None = None,
    action_embedding: np.ndarray | None = None,
    label: str = "bootstrap",
) -> dict[str, Any]:
    """``{"ground_truth", "estimators": {name: {estimate, ci, std, relative_error_mean, relative_error_std}},
    "support"}`` for every estimator whose inputs exist (DM-type ones need ``make_model``, MIPS the embeddings)."""
    has_embedding = behavior_dist is not None and action_embedding is not None
    used = _usable(estimators, make_model is not None, has_embedding)

    def run(sample: BanditLog, fit_seed: int) -> tuple[OffPolicyData, dict[str, float]]:
        data = off_policy_data(sample, action_dist, make_model=make_model, folds=folds, seed=fit_seed,
                               behavior_dist=behavior_dist, action_embedding=action_embedding)
        return data, {e.name: e.estimate(data) for e in used}

    full, point = run(log, seed)
    reps: dict[str, list[float]] = {e.name: [] for e in used}
    indices = resample_indices(log.n_rounds, n_boot, seed)
    for b, index in enumerate(track(indices, label, total=n_boot)):
        _, sample_values = run(log.take(index), seed + 1 + b)
        for name, value in sample_values.items():
            reps[name].append(value)
    table = {}
    for name, values in reps.items():
        array = np.asarray(values)
        lo, hi = percentile_interval(array, alpha)
        row: dict[str, Any] = {"estimate": point[name], "ci": [lo, hi], "std": float(array.std(ddof=1))
                               if len(array) > 1 else 0.0}
        if ground_truth is not None and ground_truth != 0:
            errors = np.abs(array - ground_truth) / abs(ground_truth)
            row["relative_error"] = float(abs(point[name] - ground_truth) / abs(ground_truth))
            row["relative_error_mean"] = float(errors.mean())
            row["relative_error_std"] = float(errors.std(ddof=1)) if len(errors) > 1 else 0.0
        table[name] = row
    truth = None if ground_truth is None else float(ground_truth)
    return {"ground_truth": truth, "estimators": table, "support": support_report(full)}
