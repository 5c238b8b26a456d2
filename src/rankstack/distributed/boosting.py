"""The LambdaRank ranker trained data-parallel on Ray Train's LightGBM trainer: the same objective, parameters and
early stopping as :func:`rankstack.ranking.lambdarank_train.fit_lambdarank`, the training groups dealt whole to the
workers (a group's candidates never straddle two), LightGBM's own data-parallel tree learner synchronising the
histograms over its network; each worker scores the whole validation set with the same trees, so all stop at the
same round. With one worker the model is the single-process one; with several, LightGBM's bins come from each
worker's part of the data, so the trees differ a little (``tests/distributed/test_boosting.py`` states the
tolerance).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.distributed.backend import Backend
from rankstack.distributed.cluster import ray_session, worker_count
from rankstack.ranking.lambdarank import prior_scores
from rankstack.ranking.lambdarank_train import DEFAULT_PARAMS, RankingRows

MODEL_FILE = "model.txt"
AfterFit = Callable[[int], None]  # (rank): called on each worker after its fit, before it reports


def worker_rows(rows: RankingRows, rank: int, world: int) -> RankingRows:
    """Worker ``rank``'s share of ``rows``: groups rank, rank + world, … (each group whole)."""
    bounds = np.concatenate([[0], np.cumsum(rows.groups)])
    mine = np.arange(rank, len(rows.groups), world)
    index = np.concatenate([np.arange(bounds[g], bounds[g + 1]) for g in mine]) if len(mine) else np.zeros(0, int)
    return RankingRows(rows.features[index], rows.labels[index], rows.groups[mine])


def _train_loop(config: dict[str, Any]) -> None:
    """One Ray Train worker: its groups, the whole validation set, LightGBM's data-parallel learner."""
    import lightgbm
    import ray
    import ray.train
    from ray.train.lightgbm import get_network_params

    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    train = ray.get(config["train"])
    validation = None if config["validation"] is None else ray.get(config["validation"])
    names, base, eval_at = config["names"], config["base"], config["eval_at"]
    mine = worker_rows(train, rank, world)
    params = {**config["params"], "eval_at": [eval_at]}
    if validation is None:  # the refit: a fixed number of rounds, nothing to validate
        params["metric"] = "none"
    if world > 1:
        params |= {"tree_learner": "data", "pre_partition": True, **get_network_params()}
    dtrain = lightgbm.Dataset(mine.features, mine.labels, group=mine.groups, feature_name=list(names),
                              init_score=prior_scores(mine.features, names, base), free_raw_data=validation is None)
    history: dict[str, Any] = {}
    if validation is None:
        booster = lightgbm.train(params, dtrain, num_boost_round=config["rounds"])
        curve, best = [], config["rounds"]
    else:
        dvalid = lightgbm.Dataset(validation.features, validation.labels, group=validation.groups,
                                  reference=dtrain, init_score=prior_scores(validation.features, names, base))
        booster = lightgbm.train(params, dtrain, num_boost_round=config["rounds"], valid_sets=[dvalid],
                                 valid_names=["validation"],
                                 callbacks=[lightgbm.early_stopping(config["early_stopping"], verbose=False),
                                            lightgbm.record_evaluation(history)])
        curve = [round(float(v), 5) for v in history["validation"][f"ndcg@{eval_at}"]]
        best = int(booster.best_iteration) or len(curve)
    metrics = {"best_iteration": best, "validation_curve": curve, "train_rows": len(mine.labels)}
    if config.get("after_fit") is not None:  # a fault drill (tests): e.g. a worker that dies before reporting
        config["after_fit"](rank)
    if rank == 0:
        with tempfile.TemporaryDirectory(prefix="rankstack-lightgbm-") as folder:  # Ray Train copies it on report
            Path(folder, MODEL_FILE).write_text(booster.model_to_string(num_iteration=best))
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder))
    else:
        ray.train.report(metrics)


def _fit(ray: Any, train: RankingRows, validation: RankingRows | None, names: Sequence[str], workers: int,
         rounds: int, early_stopping: int, eval_at: int, params: dict[str, Any], base: str | None,
         storage: Path, max_failures: int, after_fit: AfterFit | None) -> tuple[str, dict[str, Any]]:
    """One Ray Train run: (model text, worker 0's metrics); restarted whole up to ``max_failures`` times."""
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.lightgbm import LightGBMTrainer

    config = {"train": ray.put(train), "validation": None if validation is None else ray.put(validation),
              "names": list(names), "base": base, "eval_at": eval_at, "rounds": rounds,
              "early_stopping": early_stopping, "params": params, "after_fit": after_fit}
    trainer = LightGBMTrainer(_train_loop, train_loop_config=config,
                              scaling_config=ScalingConfig(num_workers=workers, resources_per_worker={"CPU": 1}),
                              run_config=RunConfig(storage_path=str(storage.resolve()), name="lambdarank",
                                                   failure_config=FailureConfig(max_failures=max_failures)))
    result = trainer.fit()
    if result.checkpoint is None:
        raise RuntimeError(f"Ray Train returned no model: {result.error}")
    return Path(result.checkpoint.path, MODEL_FILE).read_text(), dict(result.metrics or {})


def fit_lambdarank_on_ray(train: RankingRows, validation: RankingRows, names: Sequence[str], backend: Backend, *,
                          rounds: int = 500, early_stopping: int = 50, eval_at: int = 10,
                          params: dict[str, Any] | None = None, refit: bool = False, base: str | None = None,
                          storage: str | Path | None = None, max_failures: int = 2,
                          after_fit: AfterFit | None = None) -> tuple[str, dict[str, Any]]:
    """:func:`~rankstack.ranking.lambdarank_train.fit_lambdarank` on ``backend.workers`` Ray Train workers, with
    the same arguments and report (plus ``workers``); ``refit`` trains the best number of rounds again on the
    training and validation rows together, on the workers too. A fit whose worker dies is run again from the start
    (a LightGBM fit is one call, seeded: the retry gives the same trees), up to ``max_failures`` times."""
    import lightgbm

    if max_failures < 0:
        raise ValueError(f"max_failures must be >= 0, got {max_failures}")

    if not len(train.groups) or not len(validation.groups):
        raise ValueError(f"lambdarank: nothing to learn from ({len(train.groups)} training and "
                         f"{len(validation.groups)} validation groups with a positive candidate)")
    where = Path(storage) if storage is not None else Path(tempfile.mkdtemp(prefix="rankstack-lightgbm-"))
    config = {**DEFAULT_PARAMS, **(params or {})}
    try:
        with ray_session(backend) as ray:
            workers = min(worker_count(ray, backend), len(train.groups))
            text, metrics = _fit(ray, train, validation, names, workers, rounds, early_stopping, eval_at, config,
                                 base, where / "search", max_failures, after_fit)
            curve = list(metrics.get("validation_curve", []))
            best = int(metrics.get("best_iteration", len(curve)))
            if refit:
                both = RankingRows.concat([train, validation])
                text, _ = _fit(ray, both, None, names, min(workers, len(both.groups)), best, 0, eval_at, config,
                               base, where / "refit", max_failures, after_fit)
    finally:
        if storage is None:  # Ray Train's run folders in a temporary place: the model text is all that is kept
            shutil.rmtree(where, ignore_errors=True)
    gain = lightgbm.Booster(model_str=text).feature_importance(importance_type="gain", iteration=best)
    return text, {
        "best_iteration": best, f"validation_ndcg@{eval_at}": curve[best - 1] if curve else None,
        "validation_curve": curve, "train_groups": len(train.groups), "train_rows": len(train.labels),
        "validation_groups": len(validation.groups), "validation_rows": len(validation.labels),
        "importance_gain": {n: round(float(g), 3) for n, g in sorted(zip(names, gain.tolist(), strict=True),
                                                                    key=lambda p: -p[1])},
        "params": config, "refit_with_validation": refit, "base": base, "workers": workers,
        "data_parallel": workers > 1}
