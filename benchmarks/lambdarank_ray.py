"""LambdaRank in one process vs on Ray Train's LightGBM trainer with 2 data-parallel workers, on synthetic groups
(those of tests/distributed/test_boosting.py): validation NDCG@10, best round, wall (docs/benchmarks.md, Issue 19).

Usage: PYTHONPATH=src python benchmarks/lambdarank_ray.py
"""

from __future__ import annotations

import time

import numpy as np
import ray

from rankstack.distributed.backend import Backend
from rankstack.distributed.boosting import fit_lambdarank_on_ray
from rankstack.ranking.lambdarank_train import RankingRows, fit_lambdarank

NAMES = [f"f{i}" for i in range(6)]


def rows(groups: int, seed: int) -> RankingRows:
    """Groups of 20 candidates whose label follows two features plus noise; groups without a positive dropped."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(groups * 20, len(NAMES))).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=0.7, size=len(x)) > 1.2).astype(np.float64)
    return RankingRows(x, y, np.full(groups, 20, dtype=np.int64)).with_positives()


def main() -> None:
    """One run of each; prints validation NDCG@10, best round and wall."""
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    train, valid = rows(300, 2), rows(80, 3)
    t = time.perf_counter()
    _, local = fit_lambdarank(train, valid, NAMES, rounds=60, early_stopping=15)
    local_s = time.perf_counter() - t
    t = time.perf_counter()
    _, two = fit_lambdarank_on_ray(train, valid, NAMES, Backend("ray", 2), rounds=60, early_stopping=15)
    ray_s = time.perf_counter() - t
    print(f"local {local['validation_ndcg@10']} round {local['best_iteration']} {local_s:.2f} s; "
          f"ray 2 workers {two['validation_ndcg@10']} round {two['best_iteration']} {ray_s:.2f} s")


if __name__ == "__main__":
    main()
