"""The LambdaRank ranker on Ray Train's LightGBM trainer (a local Ray instance, 2 CPUs): one worker gives the
single-process model exactly; two data-parallel workers reach its validation NDCG within 0.03."""

from __future__ import annotations

import os
import tempfile
from typing import Any

import numpy as np
import pytest

from pipeline.conftest import config_dict
from rankstack.distributed.backend import Backend
from rankstack.ranking.lambdarank_train import RankingRows, fit_lambdarank

pytestmark = pytest.mark.ray
NAMES = [f"f{i}" for i in range(6)]


def _rows(groups: int, seed: int) -> RankingRows:
    """Groups of 20 candidates whose label follows two features plus noise (learnable, not trivially)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(groups * 20, len(NAMES))).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=0.7, size=len(x)) > 1.2).astype(np.float64)
    return RankingRows(x, y, np.full(groups, 20, dtype=np.int64)).with_positives()


def test_one_worker_trains_the_single_process_model(ray_instance: Any, tmp_path: Any) -> None:
    """The search (its curve and best round, in the report) and the refit on train ∪ validation (the text)."""
    from rankstack.distributed.boosting import fit_lambdarank_on_ray

    train, valid = _rows(150, 0), _rows(50, 1)
    local_text, local = fit_lambdarank(train, valid, NAMES, rounds=40, early_stopping=10, refit=True)
    text, report = fit_lambdarank_on_ray(train, valid, NAMES, Backend("ray", 1), rounds=40, early_stopping=10,
                                         refit=True, storage=tmp_path)
    assert text == local_text
    assert report.pop("workers") == 1 and not report.pop("data_parallel")
    assert report == local  # the same report: curve, best round, gains, parameters


def test_a_worker_killed_after_its_fit_is_restarted_and_gives_the_same_model(ray_instance: Any, tmp_path: Any) -> None:
    """The fit is run again from the start (one LightGBM call, seeded): the model equals the uninterrupted one."""
    from rankstack.distributed.boosting import fit_lambdarank_on_ray

    marker = tmp_path / "killed"

    def die_once(rank: int) -> None:
        if rank == 0 and not marker.exists():
            marker.write_text("worker 0 died before reporting its model")
            os._exit(1)

    train, valid = _rows(150, 4), _rows(50, 5)
    local_text, local = fit_lambdarank(train, valid, NAMES, rounds=30, early_stopping=10)
    text, report = fit_lambdarank_on_ray(train, valid, NAMES, Backend("ray", 1), rounds=30, early_stopping=10,
                                         storage=tmp_path / "ray", max_failures=1, after_fit=die_once)
    assert marker.exists()  # the worker did die
    assert text == local_text and report["best_iteration"] == local["best_iteration"]


def test_two_data_parallel_workers_reach_the_same_validation_ndcg(ray_instance: Any, tmp_path: Any,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import lightgbm

    from rankstack.distributed.boosting import fit_lambdarank_on_ray, worker_rows

    train, valid = _rows(300, 2), _rows(80, 3)
    _, local = fit_lambdarank(train, valid, NAMES, rounds=60, early_stopping=15)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # no storage given: Ray Train's runs go in a temp folder
    text, report = fit_lambdarank_on_ray(train, valid, NAMES, Backend("ray", 2), rounds=60, early_stopping=15)
    assert not list(tmp_path.iterdir())  # and it is gone afterwards
    assert report["workers"] == 2 and report["data_parallel"]
    assert report["validation_ndcg@10"] == pytest.approx(local["validation_ndcg@10"], abs=0.03)
    assert report["validation_ndcg@10"] > 0.5  # it learned (random order scores ~.3 here)
    scores = lightgbm.Booster(model_str=text).predict(valid.features)
    assert scores.shape == (len(valid.labels),) and np.isfinite(scores).all()
    halves = [worker_rows(train, r, 2) for r in (0, 1)]
    assert sum(len(h.groups) for h in halves) == len(train.groups)  # every group on one worker, whole
    assert sum(len(h.labels) for h in halves) == len(train.labels)


def test_the_pipeline_lambdarank_stage_trains_on_ray(ray_instance: Any, small_split: Any, tmp_path: Any) -> None:
    """``rankstack train --backend ray`` fits the LambdaRank stage's trees on Ray Train: with one worker, the model
    the local stage fits."""
    from functools import partial

    from rankstack.distributed.boosting import fit_lambdarank_on_ray
    from rankstack.experiments.pipeline_training import fit_stages
    from rankstack.pipeline.config import validate_pipeline_config

    fit, _ = small_split
    config = validate_pipeline_config(config_dict(ranker={
        "kind": "lambdarank", "rounds": 20, "early_stopping": 5, "min_history": 2, "base": "itemknn",
        "params": {"min_data_in_leaf": 5, "num_threads": 1, "learning_rate": 0.2}}))
    local = fit_stages(config, fit, lambda _m: None)
    on_ray = fit_stages(config, fit, lambda _m: None,
                        partial(fit_lambdarank_on_ray, backend=Backend("ray", 1), storage=tmp_path))
    assert on_ray.ranker.model_text == local.ranker.model_text  # type: ignore[union-attr]
    assert on_ray.ranker.report["workers"] == 1  # type: ignore[union-attr]


def test_a_negative_max_failures_is_refused_before_ray_starts() -> None:
    from rankstack.distributed.boosting import fit_lambdarank_on_ray

    with pytest.raises(ValueError, match="max_failures"):
        fit_lambdarank_on_ray(_rows(10, 6), _rows(5, 7), NAMES, Backend("ray", 2), max_failures=-1)
