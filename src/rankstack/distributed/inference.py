"""Batch inference on Ray workers, sharded by user: every user's embedding or top-k list, gathered in user order,
and a vector index built from the gathered item embeddings.

The fitted source reaches each worker once through Ray's object store; a shard's rows are what the source computes
for those users alone, so the gathered arrays equal one process's (``user_vectors`` and ``retrieve`` score each
user by itself).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rankstack.candidates import Candidates
from rankstack.distributed.backend import Backend
from rankstack.distributed.cluster import ray_session, worker_count
from rankstack.distributed.sharding import shard_ranges
from rankstack.distributed.tasks import run_shards
from rankstack.errors import ConfigError
from rankstack.index.vector_index import VectorIndex
from rankstack.retrieval.indexed import VectorSource, has_vectors
from rankstack.retrieval.source import CandidateSource

USERS_PER_TASK = 4096  # a task's rows: enough work per task, bounded memory per worker ([rows, n_items] scores)


def _user_shards(n: int, workers: int, per_task: int) -> list[range]:
    """Contiguous shards of ``n`` users: at least one per worker, at most ``per_task`` users each."""
    return shard_ranges(n, max(workers, -(-n // per_task)))


def user_vector_shard(source: VectorSource, users: np.ndarray, start: int, stop: int) -> np.ndarray:
    """A worker's task: the query vectors of ``users[start:stop]`` (float32, CPU)."""
    return source.user_vectors(users[start:stop]).detach().float().cpu().numpy()


def retrieve_shard(source: CandidateSource, users: np.ndarray, k: int, exclude_seen: bool, start: int, stop: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """A worker's task: the top-``k`` (item ids, scores) of ``users[start:stop]``."""
    found = source.retrieve(users[start:stop], k, exclude_seen=exclude_seen)
    return found.item_ids, found.scores


def item_vector_shard(source: VectorSource, start: int, stop: int) -> np.ndarray:
    """A worker's task: item vectors ``start..stop-1`` (float32, CPU)."""
    return source.item_vectors()[start:stop].detach().float().cpu().numpy()


def _vector_source(source: CandidateSource) -> VectorSource:
    if not has_vectors(source):
        raise ConfigError(f"source {source.name!r} has no user/item vectors to embed")
    return source  # type: ignore[return-value]


def embed_users(source: CandidateSource, user_ids: np.ndarray, backend: Backend, *, progress: bool = False,
                per_task: int = USERS_PER_TASK) -> np.ndarray:
    """Query vectors [len(user_ids), d] of a vector source, computed sharded by user on Ray workers."""
    vectors = _vector_source(source)
    users = np.asarray(user_ids, dtype=np.int64)
    with ray_session(backend) as ray:
        shards = _user_shards(len(users), worker_count(ray, backend), per_task)
        parts = run_shards(ray, user_vector_shard, (vectors, users), shards, worker_count(ray, backend),
                           label="embedding users", progress=progress)
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


def embed_items(source: CandidateSource, backend: Backend, *, progress: bool = False) -> np.ndarray:
    """Item vectors [n_items, d] of a vector source, computed by one Ray worker (a source embeds its catalogue as a
    whole: ``item_vectors()`` takes no ids, so cutting it would repeat the work in every shard)."""
    vectors = _vector_source(source)
    n_items = source._require_fitted().shape[1]
    with ray_session(backend) as ray:
        parts = run_shards(ray, item_vector_shard, (vectors,), shard_ranges(n_items, 1), 1,
                           label="embedding items", progress=progress)
    return np.concatenate(parts)


def recommend_sharded(source: CandidateSource, user_ids: np.ndarray, k: int, backend: Backend, *,
                      exclude_seen: bool = True, progress: bool = False, per_task: int = USERS_PER_TASK
                      ) -> Candidates:
    """``source.retrieve(user_ids, k)`` computed sharded by user on Ray workers (same ids, scores, tie rule)."""
    users = np.asarray(user_ids, dtype=np.int64)
    source._require_fitted()
    with ray_session(backend) as ray:
        workers = worker_count(ray, backend)
        parts: list[Any] = run_shards(ray, retrieve_shard, (source, users, k, exclude_seen),
                                      _user_shards(len(users), workers, per_task), workers, label="recommending",
                                      progress=progress)
    if not parts:
        return Candidates(np.zeros((0, k), np.int64), np.zeros((0, k), np.float32), source=source.name)
    return Candidates(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                      source=source.name)


def build_index(source: CandidateSource, index: VectorIndex, backend: Backend, *, progress: bool = False
                ) -> VectorIndex:
    """``index`` built over the source's item vectors as gathered from the Ray workers (row i = item i)."""
    return index.build(embed_items(source, backend, progress=progress))
