"""Full-ranking evaluation sharded by user across Ray workers, with the single-process evaluator's metrics.

The driver cuts the users with a held-out item into contiguous shards; each worker task (the fitted model and the
split's matrices reach it through Ray's object store, put there once) scores its shard's users as
:meth:`Evaluator.evaluate <rankstack.evaluation.evaluator.Evaluator.evaluate>` would — same train-item exclusion,
same tie rule (equal scores: lower item id first), within the same batches — and returns the sums of per-user
metrics of the batches it holds whole and the per-user values of a batch its ends cut
(:meth:`Evaluator.shard <rankstack.evaluation.evaluator.Evaluator.shard>`). The driver sums each batch over the same
values in the same order and adds the batches in order, so the means are the same floats as in one process.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from rankstack.data.dataset import Dataset
from rankstack.distributed.backend import Backend
from rankstack.distributed.cluster import ray_session, worker_count
from rankstack.distributed.sharding import shard_ranges
from rankstack.distributed.tasks import run_shards
from rankstack.errors import ConfigError
from rankstack.evaluation.evaluator import Evaluator, Scorer
from rankstack.evaluation.metrics import BatchMetrics, UserMetrics

SHARDS_PER_WORKER = 4  # more shards than workers: a slow worker holds back less of the run, and a lost one redoes less


def evaluate_shard(model: Scorer, train: sp.csr_matrix, test: sp.csr_matrix, ks: Sequence[int], batch_size: int,
                   device: str | None, item_vectors: np.ndarray | None, start: int, stop: int
                   ) -> list[tuple[int, BatchMetrics | UserMetrics]]:
    """A worker's task: the metrics of the users with a test item at positions start..stop-1."""
    evaluator = Evaluator(train, test, ks, batch_size=batch_size, device=device, item_vectors=item_vectors)
    return evaluator.shard(model, start, stop)


def worker_options(device: str | None) -> dict[str, Any]:
    """Ray resources of one worker beyond its CPU: a GPU when the work runs on CUDA."""
    return {"num_gpus": 1} if device is not None and device.startswith("cuda") else {}


def evaluate_sharded(model: Scorer, train: Dataset, held_out: Dataset, ks: Sequence[int], backend: Backend, *,
                     device: str | None = None, batch_size: int | None = None, progress: bool = False,
                     on_workers: Callable[[int], object] | None = None) -> dict[str, float]:
    """Metrics of ``model.score`` on ``held_out`` (``train`` items excluded), sharded by user over
    ``backend.workers`` Ray workers; equal to ``Evaluator.from_datasets(train, held_out, ks,
    batch_size=batch_size).evaluate(model)`` float for float; ``on_workers`` hears how many workers ran."""
    if not callable(getattr(model, "score", None)):
        raise ConfigError(f"{type(model).__name__} has no score(user_ids): only scorers are evaluated on Ray")
    # the batches and the merge (it scores nothing)
    plan = Evaluator.from_datasets(train, held_out, ks=ks, device="cpu", batch_size=batch_size)
    with ray_session(backend) as ray:
        workers = worker_count(ray, backend)
        shards = shard_ranges(len(plan.user_ids), workers * SHARDS_PER_WORKER)
        if on_workers is not None:
            on_workers(min(workers, len(shards)))
        parts = run_shards(ray, evaluate_shard, (model, plan.train, plan.test, plan.ks, plan.batch_size, device,
                                                 plan.item_vectors), shards, workers, label="evaluating",
                           progress=progress, options=worker_options(device))
    return plan.merge_shards(parts)


@dataclass
class ShardedEvaluation:
    """The ``evaluation`` an experiment takes (``run_experiment(..., evaluation=...)``): :func:`evaluate_sharded`
    on ``backend``; ``workers_used`` is set by each call."""

    backend: Backend
    workers_used: int | None = None

    def __call__(self, model: Scorer, train: Dataset, held_out: Dataset, ks: Sequence[int], *,
                 device: str | None = None, progress: bool = False) -> dict[str, float]:
        """Sharded metrics of ``model`` (see :func:`evaluate_sharded`)."""
        used: list[int] = []
        metrics = evaluate_sharded(model, train, held_out, ks, self.backend, device=device, progress=progress,
                                   on_workers=used.append)
        self.workers_used = used[0] if used else None
        return metrics

    def describe(self) -> dict[str, Any]:
        """Where the evaluation ran, for the run record (``workers``: how many were used)."""
        return {**self.backend.to_json(), "workers": self.workers_used or self.backend.workers}
