"""Retrieval through a vector index: a source's user vectors query an index built over its item vectors.

For catalogs where scoring every item per request is too slow (1M items): an approximate index (FAISS HNSW or
IVF-Flat) returns the top items by the same inner product the source scores with, then the user's training
items are removed, as ``CandidateSource.retrieve`` does.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch

from rankstack.candidates import PAD_ITEM, Candidates
from rankstack.index.vector_index import VectorIndex
from rankstack.retrieval.source import CandidateSource


@runtime_checkable
class VectorSource(Protocol):
    """A source whose score is ⟨user vector, item vector⟩ (LightGCN, two-tower, SASRec)."""

    def user_vectors(self, user_ids: np.ndarray) -> torch.Tensor:
        """Query vectors [users, d]."""
        ...

    def item_vectors(self) -> torch.Tensor:
        """Item vectors [n_items, d]; row i is internal item i."""
        ...


def has_vectors(source: type | object) -> bool:
    """Whether a source (class or instance) exposes user and item vectors an index can serve."""
    return callable(getattr(source, "user_vectors", None)) and callable(getattr(source, "item_vectors", None))


class IndexedRetriever:
    """``retrieve`` of a vector source answered by ``index`` (an empty one is built here over the source's item
    vectors; a filled one, e.g. read from an artifact, must hold exactly those)."""

    def __init__(self, source: CandidateSource, index: VectorIndex) -> None:
        if not isinstance(source, VectorSource):
            raise TypeError(f"source {source.name!r} has no user/item vectors to index")
        self.source = source
        self.vectors: VectorSource = source  # the same object, typed for its vector methods
        self.name = source.name
        if index.ntotal == 0:
            index = index.build(source.item_vectors().detach().float().cpu().numpy())
        n_items = source._require_fitted().shape[1]
        if index.ntotal != n_items:
            raise ValueError(f"the index holds {index.ntotal} vectors, source {source.name!r} has {n_items} items")
        self.index = index

    def retrieve(self, user_ids: np.ndarray, k: int, *, exclude_seen: bool = True) -> Candidates:
        """Top-``k`` items by inner product from the index, minus each user's training items (-1 pads)."""
        train = self.source._require_fitted()
        users = np.asarray(user_ids, dtype=np.int64)
        queries = self.vectors.user_vectors(users).detach().float().cpu().numpy()
        n_seen = np.diff(train.indptr)[users] if exclude_seen and len(users) else np.zeros(len(users), np.int64)
        depth = min(k + int(n_seen.max(initial=0)), self.index.ntotal)
        scores, ids = self.index.search(queries, max(depth, 1))
        if exclude_seen:
            for row, user in enumerate(users.tolist()):
                seen = train.indices[train.indptr[user]: train.indptr[user + 1]]
                ids[row, np.isin(ids[row], seen)] = PAD_ITEM
            order = np.argsort(ids < 0, axis=1, kind="stable")  # survivors first, in score order
            ids, scores = np.take_along_axis(ids, order, axis=1), np.take_along_axis(scores, order, axis=1)
        ids, scores = ids[:, :k], np.where(ids[:, :k] >= 0, scores[:, :k], -np.inf).astype(np.float32)
        if ids.shape[1] < k:
            pad = k - ids.shape[1]
            ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=PAD_ITEM)
            scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
        return Candidates(ids, scores, source=self.name)
