"""Exact full-ranking evaluation: score every item for every test user, drop train items, take top-K."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import scipy.sparse as sp
import torch

from rankstack.candidates import PAD_ITEM
from rankstack.data.dataset import Dataset
from rankstack.device import resolve_device
from rankstack.evaluation.metrics import (
    BatchMetrics,
    MetricAccumulator,
    UserMetrics,
    canonical_csr,
    hits_matrix,
    item_popularity,
    train_item_count,
    validate_ks,
)
from rankstack.index.topk import topk_excluding
from rankstack.progress import new_progress

SCORE_BUDGET_BYTES = 256 * 2**20  # a [batch, n_items] float32 score block stays under this


@runtime_checkable
class Scorer(Protocol):
    """Anything that scores all items for a batch of users (e.g. a ``CandidateSource``).

    A scorer whose ``score`` returns a new tensor on every call may say so with a class attribute
    ``fresh_scores = True``: the evaluator then masks train items in that tensor instead of in a copy.
    """

    def score(self, user_ids: np.ndarray) -> torch.Tensor:
        """Float scores [len(user_ids), n_items]; higher is better."""
        ...


def default_batch_size(n_items: int, budget_bytes: int = SCORE_BUDGET_BYTES) -> int:
    """Users per batch: at most 1024, and few enough that float32 scores [batch, n_items] fit the budget."""
    return max(1, min(1024, budget_bytes // (4 * max(n_items, 1))))


class Evaluator:
    """Full-ranking evaluator over all items (no sampled negatives); means over users with test items.

    Each user's train items are removed before the top-K; ranking uses raw scores, and equal scores go to the
    lower item id (:func:`~rankstack.index.topk.topk_lowest_id`), the rule every ``retrieve`` follows, so
    metrics of ``evaluate(model)`` equal those of ``evaluate_recs`` over ``model.retrieve``'s lists.
    """

    def __init__(
        self,
        train: sp.spmatrix | sp.sparray,
        test: sp.spmatrix | sp.sparray,
        ks: Sequence[int] = (10, 20),
        *,
        batch_size: int | None = None,
        device: str | torch.device | None = None,
        item_vectors: np.ndarray | torch.Tensor | None = None,
        progress: bool = False,
    ) -> None:
        self.train = canonical_csr(train)
        self.test = canonical_csr(test)
        if self.train.shape != self.test.shape:
            raise ValueError(f"train {self.train.shape} and test {self.test.shape} shapes differ")
        self.n_users, self.n_items = self.test.shape
        self.ks = validate_ks(ks)
        self.max_k = self.ks[-1]
        self.batch_size = default_batch_size(self.n_items) if batch_size is None else int(batch_size)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.device = resolve_device(device)
        if item_vectors is not None:
            if isinstance(item_vectors, torch.Tensor):
                item_vectors = item_vectors.detach().cpu().numpy()
            item_vectors = np.asarray(item_vectors)
            if item_vectors.ndim != 2 or item_vectors.shape[0] != self.n_items:
                raise ValueError(f"item_vectors must be [{self.n_items}, dim], got {item_vectors.shape}")
        self.item_vectors = item_vectors
        self.progress = progress
        self.n_relevant = np.diff(self.test.indptr)
        self.user_ids = np.flatnonzero(self.n_relevant > 0).astype(np.int64)
        self._item_prob = item_popularity(self.train)
        self._n_train_items = train_item_count(self.train)

    @classmethod
    def from_datasets(
        cls, train: Dataset, test: Dataset, ks: Sequence[int] = (10, 20), **kwargs: Any
    ) -> Evaluator:
        """An evaluator from two datasets sharing id maps (uses ``Dataset.interaction_matrix()``)."""
        if train.user_map != test.user_map or train.item_map != test.item_map:
            raise ValueError("train and test datasets must share the same user and item id maps")
        return cls(train.interaction_matrix(), test.interaction_matrix(), ks, **kwargs)

    def evaluate(self, model: Scorer) -> dict[str, float]:
        """Metrics of ``model.score`` (all items scored, train items excluded, top-max(ks) taken; ties: lower id)."""
        if not callable(getattr(model, "score", None)):
            raise TypeError(f"{type(model).__name__} has no score(user_ids) method")
        owned = bool(getattr(model, "fresh_scores", False))  # its score tensors may be masked in place
        return self._run(lambda users: torch.as_tensor(model.score(users)), in_place=owned)

    def recommend(self, model: Scorer, user_ids: np.ndarray) -> np.ndarray:
        """The lists [len(user_ids), max(ks)] that :meth:`evaluate` scores (train items excluded, -1 pads)."""
        users = np.asarray(user_ids, dtype=np.int64)
        with torch.no_grad():
            return self._top(torch.as_tensor(model.score(users)), users)

    def evaluate_embeddings(
        self, user_emb: np.ndarray | torch.Tensor, item_emb: np.ndarray | torch.Tensor
    ) -> dict[str, float]:
        """Metrics of inner-product scores ``user_emb @ item_emb.T`` ([n_users, d] and [n_items, d])."""
        users = torch.as_tensor(user_emb).detach()
        items = torch.as_tensor(item_emb).detach().to(self.device)
        if users.ndim != 2 or items.ndim != 2 or users.shape[1] != items.shape[1]:
            raise ValueError(f"embedding shapes {tuple(users.shape)} and {tuple(items.shape)} do not match")
        if users.shape[0] != self.n_users or items.shape[0] != self.n_items:
            raise ValueError(
                f"expected {self.n_users} user and {self.n_items} item rows, "
                f"got {users.shape[0]} and {items.shape[0]}"
            )
        items_t = items.float().T.contiguous()
        users_f = users.to(self.device).float()

        def score(batch: np.ndarray) -> torch.Tensor:
            return users_f[torch.from_numpy(batch).to(self.device)] @ items_t

        return self._run(score, in_place=True)

    def evaluate_recs(self, recs: np.ndarray) -> dict[str, float]:
        """Metrics of precomputed lists ``recs`` [n_users, K] (row = user id, -1 pads), taken as given."""
        recs = np.asarray(recs)
        if recs.ndim != 2 or recs.shape[0] != self.n_users:
            raise ValueError(f"recs must be [{self.n_users}, K], got {recs.shape}")
        if not np.issubdtype(recs.dtype, np.integer):
            raise ValueError(f"recs must hold integer item ids, got dtype {recs.dtype}")
        if recs.shape[1] < self.max_k:
            pad = np.full((self.n_users, self.max_k - recs.shape[1]), PAD_ITEM, dtype=recs.dtype)
            recs = np.concatenate([recs, pad], axis=1)
        acc = self._accumulator()
        for batch in self._batches():
            top = recs[batch, : self.max_k]
            acc.add(top, hits_matrix(top, self.test[batch]), self.n_relevant[batch])
        return acc.result()

    @property
    def n_batches(self) -> int:
        """How many batches :meth:`evaluate` scores (of up to ``batch_size`` users with a test item each)."""
        return -(-len(self.user_ids) // self.batch_size)

    def shard(self, model: Scorer, start: int, stop: int) -> list[tuple[int, BatchMetrics | UserMetrics]]:
        """Metrics of the users with a test item at positions ``start..stop-1`` (of ``user_ids``), scored in pieces
        of :meth:`evaluate`'s batches: ``(batch number, its sums)`` for a batch wholly inside, ``(batch number,
        per-user values)`` for the part of one cut by the shard's ends. :meth:`merge_shards` of every shard of
        ``0..len(user_ids)`` equals :meth:`evaluate` float for float when ``model`` scores a user the same in
        any batch (a sum is taken over the same values in the same order)."""
        if not 0 <= start <= stop <= len(self.user_ids):
            raise IndexError(f"shard {start}..{stop} is outside the {len(self.user_ids)} users with a test item")
        owned = bool(getattr(model, "fresh_scores", False))
        acc = self._accumulator()
        out: list[tuple[int, BatchMetrics | UserMetrics]] = []
        with torch.no_grad():
            for number in range(start // self.batch_size, -(-stop // self.batch_size)):
                lo, hi = number * self.batch_size, (number + 1) * self.batch_size
                batch = self.user_ids[max(lo, start): min(hi, stop)]
                recs = self._top(torch.as_tensor(model.score(batch)), batch, in_place=owned)
                values = acc.per_user(recs, hits_matrix(recs, self.test[batch]), self.n_relevant[batch])
                whole = start <= lo and min(hi, len(self.user_ids)) <= stop
                out.append((number, values.summed() if whole else values))
        return out

    def merge_shards(self, shards: Iterable[Sequence[tuple[int, BatchMetrics | UserMetrics]]]) -> dict[str, float]:
        """Metrics from the :meth:`shard` results of contiguous shards covering every user, given in user order."""
        pieces: dict[int, list[BatchMetrics | UserMetrics]] = {}
        for shard in shards:
            for number, part in shard:
                pieces.setdefault(number, []).append(part)
        if sorted(pieces) != list(range(self.n_batches)):
            raise ValueError(f"the shards cover batches {sorted(pieces)}, expected 0..{self.n_batches - 1}")
        acc = self._accumulator()
        for number in range(self.n_batches):
            parts = pieces[number]
            if len(parts) > 1 and any(isinstance(p, BatchMetrics) for p in parts):
                raise ValueError(f"batch {number} is covered by more than one shard")
            if isinstance(parts[0], BatchMetrics):
                acc.add_batch(parts[0])
            else:
                acc.add_batch(UserMetrics.join([p for p in parts if isinstance(p, UserMetrics)]).summed())
        return acc.result()

    def _accumulator(self) -> MetricAccumulator:
        return MetricAccumulator(
            self.ks,
            n_items=self.n_items,
            n_train_items=self._n_train_items,
            item_prob=self._item_prob,
            item_vectors=self.item_vectors,
        )

    def _batches(self) -> Iterator[np.ndarray]:
        """Batches of the user ids that have at least one test item, with an optional progress bar."""
        starts = range(0, len(self.user_ids), self.batch_size)
        if not self.progress:
            for start in starts:
                yield self.user_ids[start : start + self.batch_size]
            return
        with new_progress(transient=True) as bar:
            task = bar.add_task("evaluating", total=len(starts))
            for start in starts:
                yield self.user_ids[start : start + self.batch_size]
                bar.advance(task)

    def _run(self, score: Callable[[np.ndarray], torch.Tensor], *, in_place: bool = False) -> dict[str, float]:
        """Score, exclude train items, take top-max(ks) and accumulate metrics batch by batch (``in_place``: the
        score tensors are fresh, so train items are masked in them instead of in a copy)."""
        acc = self._accumulator()
        with torch.no_grad():
            for batch in self._batches():
                recs = self._top(score(batch), batch, in_place=in_place)
                acc.add(recs, hits_matrix(recs, self.test[batch]), self.n_relevant[batch])
        return acc.result()

    def _top(self, scores: torch.Tensor, batch: np.ndarray, *, in_place: bool = False) -> np.ndarray:
        """Top-max(ks) item ids [len(batch), max_k] of ``scores``, the batch's train items excluded."""
        scores = scores.to(self.device)
        if scores.shape != (len(batch), self.n_items):
            raise ValueError(f"score() returned {tuple(scores.shape)}, expected {(len(batch), self.n_items)}")
        _, indices = topk_excluding(scores, self.max_k, self.train, batch, in_place=in_place)
        return indices.cpu().numpy()
