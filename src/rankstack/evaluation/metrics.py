"""Top-K ranking metrics as pure numpy functions over a boolean hits matrix or a recommendation matrix.

Conventions: ``recs`` is an int array [n_users, K] of item ids, best first, ``-1`` padding;
``hits`` is a bool array [n_users, K] (``hits[u, i]`` = the i-th item of user u is a test item);
``n_relevant`` is the size of each user's test set. Per-user functions return float arrays; a user with
no test items (or, for list metrics, no recommendations) scores 0. Means are taken by the caller over
users with ``n_relevant >= 1``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

ACCURACY_METRICS = ("recall", "ndcg", "hr", "mrr", "precision", "map")


def _first_occurrence(recs: np.ndarray) -> np.ndarray:
    """Bool [n, K]: True where the item is not a repeat of an item earlier in the same row."""
    if recs.shape[1] < 2:
        return np.ones(recs.shape, dtype=bool)
    order = np.argsort(recs, axis=1, kind="stable")
    ordered = np.take_along_axis(recs, order, axis=1)
    repeat = np.zeros(recs.shape, dtype=bool)
    np.put_along_axis(repeat, order[:, 1:], ordered[:, 1:] == ordered[:, :-1], axis=1)
    return ~repeat


def hits_matrix(recs: np.ndarray, truth: sp.spmatrix | sp.sparray) -> np.ndarray:
    """Bool [n_users, K]: ``recs[u, i]`` is a stored non-zero of row u of ``truth`` [n_users, n_items].

    Padding (-1) never hits; an item repeated in a row only counts at its first position.
    """
    recs = np.asarray(recs)
    if recs.ndim != 2:
        raise ValueError(f"recs must be 2-D [n_users, K], got shape {recs.shape}")
    truth = sp.csr_matrix(truth)
    n_users, n_items = truth.shape
    if recs.shape[0] != n_users:
        raise ValueError(f"recs has {recs.shape[0]} rows but truth has {n_users}")
    if recs.size and (recs.min() < -1 or recs.max() >= n_items):
        raise ValueError(f"recs holds item ids outside [-1, {n_items})")
    if recs.size == 0 or truth.nnz == 0:
        return np.zeros(recs.shape, dtype=bool)
    rows = np.repeat(np.arange(n_users, dtype=np.int64), np.diff(truth.indptr))
    stored = truth.data != 0
    keys = np.sort(rows[stored] * n_items + truth.indices[stored].astype(np.int64))
    if keys.size == 0:
        return np.zeros(recs.shape, dtype=bool)
    valid = recs >= 0
    rec_keys = np.arange(n_users, dtype=np.int64)[:, None] * n_items + np.where(valid, recs, 0)
    pos = np.minimum(np.searchsorted(keys, rec_keys), keys.size - 1)
    return valid & (keys[pos] == rec_keys) & _first_occurrence(recs)


def _discounts(k: int) -> np.ndarray:
    """Position discounts 1/log2(i+1) for i = 1..k."""
    return 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))


def _top(hits: np.ndarray, k: int) -> np.ndarray:
    """The first ``k`` columns of ``hits`` as float64 (fewer if the lists are shorter)."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return np.asarray(hits[:, :k], dtype=np.float64)


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, 0 where den is 0."""
    den = np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den > 0)


def recall_at_k(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """recall@K = (Σ_{i≤K} rel_i) / |test|."""
    return _safe_div(_top(hits, k).sum(axis=1), n_relevant)


def precision_at_k(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """precision@K = (Σ_{i≤K} rel_i) / K  (0 for users without test items)."""
    return np.where(np.asarray(n_relevant) > 0, _top(hits, k).sum(axis=1) / k, 0.0)


def hit_rate_at_k(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """hr@K = 1 if Σ_{i≤K} rel_i > 0 else 0."""
    return np.where(np.asarray(n_relevant) > 0, _top(hits, k).any(axis=1), False).astype(np.float64)


def ndcg_at_k(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """ndcg@K = Σ_{i≤K} rel_i / log2(i+1)  ÷  Σ_{i≤min(|test|, K)} 1 / log2(i+1)."""
    top = _top(hits, k)
    disc = _discounts(k)
    dcg = top @ disc[: top.shape[1]]
    ideal = np.concatenate([[0.0], np.cumsum(disc)])
    idcg = ideal[np.minimum(np.asarray(n_relevant, dtype=np.int64), k)]
    return _safe_div(dcg, idcg)


def mrr_at_k(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """mrr@K = 1 / (rank of the first hit within the top K), 0 if there is none."""
    top = _top(hits, k) > 0
    if top.shape[1] == 0:
        return np.zeros(top.shape[0])
    found = top.any(axis=1) & (np.asarray(n_relevant) > 0)
    return np.where(found, 1.0 / (top.argmax(axis=1) + 1.0), 0.0)


def average_precision_at_k(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """map@K (per user AP@K) = Σ_{i≤K} precision@i · rel_i  ÷  min(|test|, K)."""
    top = _top(hits, k)
    prec = np.cumsum(top, axis=1) / np.arange(1, top.shape[1] + 1)
    return _safe_div((prec * top).sum(axis=1), np.minimum(np.asarray(n_relevant), k))


def coverage_at_k(recs: np.ndarray, k: int, n_train_items: int) -> float:
    """coverage@K = |distinct items in the top K of all lists (ignoring -1)| / |items in train|."""
    top = np.asarray(recs)[:, :k]
    distinct = np.unique(top[top >= 0]).size
    return distinct / n_train_items if n_train_items > 0 else 0.0


def item_popularity(train: sp.spmatrix | sp.sparray) -> np.ndarray:
    """p_i = |train users who interacted with i| / |train users|; never-seen items get 1 / (|users| + 1).

    "Train users" are rows with at least one stored interaction.
    """
    binary = canonical_csr(train)
    n_users = int((np.diff(binary.indptr) > 0).sum())
    counts = np.bincount(binary.indices, minlength=binary.shape[1]).astype(np.float64)
    prob = counts / max(n_users, 1)
    prob[counts == 0] = 1.0 / (n_users + 1)
    return prob


def novelty_at_k(recs: np.ndarray, item_prob: np.ndarray, k: int) -> np.ndarray:
    """novelty@K = mean over the (non-padding) top-K items of −log2(p_i); 0 for an empty list."""
    top = np.asarray(recs)[:, :k]
    valid = top >= 0
    info = -np.log2(np.asarray(item_prob, dtype=np.float64))
    total = np.where(valid, info[np.where(valid, top, 0)], 0.0).sum(axis=1)
    return _safe_div(total, valid.sum(axis=1))


def intra_list_diversity_at_k(
    recs: np.ndarray, item_vectors: np.ndarray, k: int, *, chunk: int = 4096
) -> np.ndarray:
    """ild@K = mean over pairs i<j of the top-K list of (1 − cos(v_i, v_j)); 0 for lists under 2 items.

    Uses Σ_{i<j} cos = (‖Σ_i v̂_i‖² − Σ_i ‖v̂_i‖²) / 2 with unit vectors v̂; zero vectors count as orthogonal.
    """
    vecs = np.asarray(item_vectors, dtype=np.float64)
    norms = np.linalg.norm(vecs, axis=1, keepdims=True)
    unit = np.divide(vecs, norms, out=np.zeros_like(vecs), where=norms > 0)
    top = np.asarray(recs)[:, :k]
    out = np.zeros(top.shape[0])
    for start in range(0, top.shape[0], chunk):
        part = top[start : start + chunk]
        valid = part >= 0
        v = unit[np.where(valid, part, 0)] * valid[..., None]
        total = v.sum(axis=1)
        same = (total * total).sum(axis=1) - (v * v).sum(axis=(1, 2))
        m = valid.sum(axis=1).astype(np.float64)
        pairs = m * (m - 1) / 2
        out[start : start + chunk] = np.where(pairs > 0, 1.0 - _safe_div(same / 2, pairs), 0.0)
    return out


_PER_USER = {
    "recall": recall_at_k,
    "ndcg": ndcg_at_k,
    "hr": hit_rate_at_k,
    "mrr": mrr_at_k,
    "precision": precision_at_k,
    "map": average_precision_at_k,
}


@dataclass(frozen=True)
class BatchMetrics:
    """One batch's contribution to a :class:`MetricAccumulator`: the sum of each per-user metric over the batch's
    users with a test item, how many they were, and the distinct items in their top K (for coverage@K).

    Adding the batches of a run in the same order gives the same floats however they were computed (in one
    process or on several workers): the running sums see the same additions.
    """

    sums: dict[str, float]
    n_users: int
    seen: dict[int, np.ndarray]


@dataclass(frozen=True)
class UserMetrics:
    """Each per-user metric of consecutive users with a test item (a piece of a batch), before summing: the pieces
    of one batch, joined in order, sum to that batch's :class:`BatchMetrics` float for float."""

    values: dict[str, np.ndarray]
    n_users: int
    seen: dict[int, np.ndarray]

    @staticmethod
    def join(pieces: Sequence[UserMetrics]) -> UserMetrics:
        """The pieces, in the order given, as one."""
        if not pieces:
            raise ValueError("nothing to join")
        first = pieces[0]
        return UserMetrics({key: np.concatenate([p.values[key] for p in pieces]) for key in first.values},
                           sum(p.n_users for p in pieces),
                           {k: np.unique(np.concatenate([p.seen[k] for p in pieces])) for k in first.seen})

    def summed(self) -> BatchMetrics:
        """The batch contribution of these users: each metric summed over them."""
        return BatchMetrics({key: float(values.sum()) for key, values in self.values.items()}, self.n_users,
                            self.seen)


class MetricAccumulator:
    """Running sums of per-user metrics over batches of users; :meth:`result` gives the means."""

    def __init__(
        self,
        ks: Sequence[int],
        *,
        n_items: int,
        n_train_items: int | None = None,
        item_prob: np.ndarray | None = None,
        item_vectors: np.ndarray | None = None,
    ) -> None:
        self.ks = validate_ks(ks)
        self.n_train_items = n_items if n_train_items is None else n_train_items
        self.item_prob = item_prob
        self.item_vectors = item_vectors
        self.n_users = 0
        self._sums: dict[str, float] = {}
        self._seen = {k: np.zeros(n_items, dtype=bool) for k in self.ks}

    def per_user(self, recs: np.ndarray, hits: np.ndarray, n_relevant: np.ndarray) -> UserMetrics:
        """Each metric of each user of a batch (rows whose ``n_relevant`` is 0 are skipped), not added."""
        keep = np.asarray(n_relevant) > 0
        recs, hits, n_rel = np.asarray(recs)[keep], np.asarray(hits)[keep], np.asarray(n_relevant)[keep]
        values: dict[str, np.ndarray] = {}
        seen: dict[int, np.ndarray] = {}
        for k in self.ks:
            for name, fn in _PER_USER.items():
                values[f"{name}@{k}"] = np.asarray(fn(hits, n_rel, k), dtype=np.float64)
            top = recs[:, :k]
            seen[k] = np.unique(top[top >= 0])
            if self.item_prob is not None:
                values[f"novelty@{k}"] = novelty_at_k(recs, self.item_prob, k)
            if self.item_vectors is not None:
                values[f"ild@{k}"] = intra_list_diversity_at_k(recs, self.item_vectors, k)
        return UserMetrics(values, int(keep.sum()), seen)

    def batch(self, recs: np.ndarray, hits: np.ndarray, n_relevant: np.ndarray) -> BatchMetrics:
        """A batch's contribution, not added; rows whose ``n_relevant`` is 0 are skipped."""
        return self.per_user(recs, hits, n_relevant).summed()

    def add(self, recs: np.ndarray, hits: np.ndarray, n_relevant: np.ndarray) -> None:
        """Add a batch; rows whose ``n_relevant`` is 0 are skipped."""
        self.add_batch(self.batch(recs, hits, n_relevant))

    def add_batch(self, part: BatchMetrics) -> None:
        """Add one batch's contribution (from :meth:`batch`, here or in another process)."""
        self.n_users += part.n_users
        for key, value in part.sums.items():
            self._sums[key] = self._sums.get(key, 0.0) + value
        for k, items in part.seen.items():
            self._seen[k][items] = True

    def result(self) -> dict[str, float]:
        """Mean of each metric over the users added, coverage@K, and ``users_evaluated``."""
        out: dict[str, float] = {}
        for k in self.ks:
            for name in (*ACCURACY_METRICS, "coverage", "novelty", "ild"):
                key = f"{name}@{k}"
                if name == "coverage":
                    seen = int(self._seen[k].sum())
                    out[key] = seen / self.n_train_items if self.n_train_items > 0 else 0.0
                elif key in self._sums:
                    out[key] = self._sums[key] / self.n_users if self.n_users else 0.0
        out["users_evaluated"] = self.n_users
        return out


def validate_ks(ks: Sequence[int]) -> list[int]:
    """Sorted distinct cut-offs, each an int ≥ 1 (raises ValueError otherwise)."""
    values = list(ks)
    if not values:
        raise ValueError("ks must contain at least one cut-off")
    for k in values:
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise ValueError(f"each k must be an integer >= 1, got {k!r}")
    return sorted({int(k) for k in values})


def parse_ks(text: str) -> list[int]:
    """Parse a comma-separated list of cut-offs such as ``"10,20"`` (raises ValueError on bad input)."""
    parts = [p.strip() for p in text.split(",")]
    if not text.strip() or any(not p for p in parts):
        raise ValueError(f"expected comma-separated integers >= 1 such as '10,20', got {text!r}")
    values = []
    for part in parts:
        if not part.isdigit() or int(part) < 1:
            raise ValueError(f"each k must be an integer >= 1, got {part!r} in {text!r}")
        values.append(int(part))
    return validate_ks(values)


def summarize(
    recs: np.ndarray,
    truth: sp.spmatrix | sp.sparray,
    ks: Sequence[int],
    *,
    train: sp.spmatrix | sp.sparray | None = None,
    item_vectors: np.ndarray | None = None,
) -> dict[str, float]:
    """Metric means over users with ≥1 test item, for every k in ``ks``, from one top-maxK ``recs``.

    Coverage counts the lists of evaluated users only, relative to items with a train interaction when
    ``train`` is given (else all items);
    novelty@K is included when ``train`` is given, ild@K when ``item_vectors`` are.
    """
    truth = canonical_csr(truth)
    n_relevant = np.diff(truth.indptr)
    acc = MetricAccumulator(
        ks,
        n_items=truth.shape[1],
        n_train_items=None if train is None else train_item_count(train),
        item_prob=None if train is None else item_popularity(train),
        item_vectors=item_vectors,
    )
    acc.add(recs, hits_matrix(recs, truth), n_relevant)
    return acc.result()


def canonical_csr(matrix: sp.spmatrix | sp.sparray) -> sp.csr_matrix:
    """A CSR copy with duplicates summed, explicit zeros removed and indices sorted."""
    out = sp.csr_matrix(matrix, copy=True)
    out.sum_duplicates()
    out.eliminate_zeros()
    out.sort_indices()
    return out


def train_item_count(train: sp.spmatrix | sp.sparray) -> int:
    """Number of items (columns) with at least one stored non-zero in ``train``."""
    return int(np.unique(canonical_csr(train).indices).size)
