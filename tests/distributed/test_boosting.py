"""The LambdaRank ranker on Ray Train's LightGBM trainer (a local Ray instance, 2 CPUs): one worker gives the
single-process model exactly; two data-parallel workers reach its validation NDCG within 0.03."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

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
    from rankstack.distributed.boosting import fit_lambdarank_on_ray

    train, valid = _rows(150, 0), _rows(50, 1)
    local_text, local = fit_lambdarank(train, valid, NAMES, rounds=40, early_stopping=10)
    text, report = fit_lambdarank_on_ray(train, valid, NAMES, Backend("ray", 1), rounds=40, early_stopping=10,
                                         storage=tmp_path)
    assert text == local_text
    assert report["validation_curve"] == local["validation_curve"] and report["workers"] == 1


def test_two_data_parallel_workers_reach_the_same_validation_ndcg(ray_instance: Any, tmp_path: Any) -> None:
    import lightgbm

    from rankstack.distributed.boosting import fit_lambdarank_on_ray, worker_rows

    train, valid = _rows(300, 2), _rows(80, 3)
    _, local = fit_lambdarank(train, valid, NAMES, rounds=60, early_stopping=15)
    text, report = fit_lambdarank_on_ray(train, valid, NAMES, Backend("ray", 2), rounds=60, early_stopping=15,
                                         storage=tmp_path)
    assert report["workers"] == 2 and report["data_parallel"]
    assert report["validation_ndcg@10"] == pytest.approx(local["validation_ndcg@10"], abs=0.03)
    assert report["validation_ndcg@10"] > 0.5  # it learned (random order scores ~.3 here)
    scores = lightgbm.Booster(model_str=text).predict(valid.features)
    assert scores.shape == (len(valid.labels),) and np.isfinite(scores).all()
    halves = [worker_rows(train, r, 2) for r in (0, 1)]
    assert sum(len(h.groups) for h in halves) == len(train.groups)  # every group on one worker, whole
    assert sum(len(h.labels) for h in halves) == len(train.labels)
