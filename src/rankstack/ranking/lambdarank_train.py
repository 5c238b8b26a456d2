"""Fit the LambdaRank candidate ranker (LightGBM ``objective=lambdarank``) on grouped candidate rows.

A group is one request (a user at a window's cut): its candidates' features and 0/1 labels (the candidate
appears in the user's label window). LambdaRank (Burges, "From RankNet to LambdaRank to LambdaMART: An
Overview", MSR-TR-2010-82) weights each pairwise logistic gradient by the |ΔNDCG| of swapping the pair; training
stops when the validation groups' NDCG@``eval_at`` has not improved for ``early_stopping`` rounds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rich.progress import Progress, TaskID

from rankstack.progress import new_progress
from rankstack.ranking.lambdarank import prior_scores


@dataclass
class RankingRows:
    """Rows of several groups, group by group: ``features`` [N, F], ``labels`` [N], ``groups`` sizes summing to N."""

    features: np.ndarray
    labels: np.ndarray
    groups: np.ndarray
    users: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @classmethod
    def concat(cls, parts: Sequence[RankingRows]) -> RankingRows:
        """The rows of ``parts`` one after another."""
        if not parts:
            return cls(np.zeros((0, 0), np.float32), np.zeros(0), np.zeros(0, np.int64))
        return cls(np.concatenate([p.features for p in parts]), np.concatenate([p.labels for p in parts]),
                   np.concatenate([p.groups for p in parts]), np.concatenate([p.users for p in parts]))

    def with_positives(self) -> RankingRows:
        """Only the groups with at least one positive label (the others carry no LambdaRank gradient)."""
        bounds = np.concatenate([[0], np.cumsum(self.groups)])
        keep = [g for g in range(len(self.groups)) if self.labels[bounds[g]: bounds[g + 1]].max(initial=0) > 0]
        rows = np.concatenate([np.arange(bounds[g], bounds[g + 1]) for g in keep]) if keep else np.zeros(0, int)
        return RankingRows(self.features[rows], self.labels[rows], self.groups[keep],
                           self.users[keep] if len(self.users) == len(self.groups) else self.users)


# one thread: on a shared or busy machine LightGBM's OpenMP threads spin-wait (measured: 60 trees of 60,000 rows in
# 6 s with one thread, 100 s with two on a 2-core box at load 14)
DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "lambdarank", "metric": "ndcg", "learning_rate": 0.05, "num_leaves": 31,
    "min_data_in_leaf": 50, "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1,
    "lambdarank_truncation_level": 20, "verbosity": -1, "num_threads": 1, "seed": 0, "deterministic": True,
    "force_row_wise": True,
}


def fit_lambdarank(train: RankingRows, validation: RankingRows, names: Sequence[str], *, rounds: int = 500,
                   early_stopping: int = 50, eval_at: int = 10,
                   params: dict[str, Any] | None = None, refit: bool = False,
                   base: str | None = None) -> tuple[str, dict[str, Any]]:
    """(LightGBM text model, report: best iteration, validation NDCG per round, gain per feature); ``refit``
    trains the best number of rounds again on the training and validation rows together; ``base`` starts every
    row at ``prior_scores`` (the trees learn corrections to that source's order)."""
    import lightgbm

    if not len(train.groups) or not len(validation.groups):
        raise ValueError(f"lambdarank: nothing to learn from ({len(train.groups)} training and "
                         f"{len(validation.groups)} validation groups with a positive candidate)")
    config = {**DEFAULT_PARAMS, **(params or {}), "eval_at": [eval_at]}
    dtrain = lightgbm.Dataset(train.features, train.labels, group=train.groups, feature_name=list(names),
                              init_score=prior_scores(train.features, names, base), free_raw_data=False)
    dvalid = lightgbm.Dataset(validation.features, validation.labels, group=validation.groups, reference=dtrain,
                              init_score=prior_scores(validation.features, names, base))
    history: dict[str, Any] = {}
    with new_progress() as progress:
        task = progress.add_task("LambdaRank rounds", total=rounds)
        booster = lightgbm.train(config, dtrain, num_boost_round=rounds, valid_sets=[dvalid],
                                 valid_names=["validation"],
                                 callbacks=[lightgbm.early_stopping(early_stopping, verbose=False),
                                            lightgbm.record_evaluation(history),
                                            _report_rounds(progress, task, f"ndcg@{eval_at}")])
    curve = [round(float(v), 5) for v in history["validation"][f"ndcg@{eval_at}"]]
    best = int(booster.best_iteration) or len(curve)
    if refit:
        both = RankingRows.concat([train, validation])
        with new_progress() as progress:
            task = progress.add_task("LambdaRank refit on train + validation", total=best)
            booster = lightgbm.train(config | {"metric": "none"}, lightgbm.Dataset(
                both.features, both.labels, group=both.groups, feature_name=list(names),
                init_score=prior_scores(both.features, names, base)), num_boost_round=best,
                callbacks=[_report_rounds(progress, task, None)])
    gain = booster.feature_importance(importance_type="gain", iteration=best)
    report = {
        "best_iteration": best, f"validation_ndcg@{eval_at}": curve[best - 1] if curve else None,
        "validation_curve": curve, "train_groups": len(train.groups), "train_rows": len(train.labels),
        "validation_groups": len(validation.groups), "validation_rows": len(validation.labels),
        "importance_gain": {n: round(float(g), 3) for n, g in sorted(zip(names, gain.tolist(), strict=True),
                                                                    key=lambda p: -p[1])},
        "params": {k: v for k, v in config.items() if k != "eval_at"}, "refit_with_validation": refit,
        "base": base,
    }
    return booster.model_to_string(num_iteration=best), report


def _report_rounds(progress: Progress, task: TaskID, metric: str | None) -> Callable[[Any], None]:
    """A LightGBM callback advancing ``task`` by one per boosting round, its description showing the latest
    validation ``metric`` (rounds can take minutes on large logs; early stopping ends the bar before its total)."""
    def callback(env: Any) -> None:
        scores = [float(r[2]) for r in env.evaluation_result_list or [] if metric is not None and r[1] == metric]
        description = f"LambdaRank rounds (validation {metric} {scores[0]:.4f})" if scores else None
        progress.update(task, advance=1, description=description)
    return callback
