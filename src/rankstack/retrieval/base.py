"""The candidate-source interface: fit on a dataset, score or retrieve top-k items for users."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal, Protocol

import numpy as np
import scipy.sparse as sp
import torch
from pydantic import BaseModel, ConfigDict

from rankstack.data.dataset import Dataset

PAD_ITEM = -1


class SourceConfig(BaseModel):
    """Base of every component config: unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Candidates:
    """Top-k items per user: ``item_ids`` [batch, k] (``-1`` pads short rows), ``scores`` [batch, k]."""

    item_ids: np.ndarray
    scores: np.ndarray
    source: str

    def __post_init__(self) -> None:
        if self.item_ids.shape != self.scores.shape or self.item_ids.ndim != 2:
            raise ValueError(
                f"Candidates: item_ids {self.item_ids.shape} and scores {self.scores.shape} must be equal 2-D"
            )

    @property
    def k(self) -> int:
        """Number of slots per row."""
        return int(self.item_ids.shape[1])


@dataclass(frozen=True)
class BudgetStop:
    """A training run that its wall-clock ``time_budget_s`` ended before its configured ``epochs``.

    ``epochs_done`` epochs ran to the end; ``partial_epoch`` says what became of an epoch cut part-way:
    ``"discarded"`` (the weights are those of a completed epoch), ``"kept"`` (the budget ran out inside the
    first epoch, so its partial updates are all there is) or None (the budget was seen between epochs).
    """

    budget_s: float
    epochs_done: int
    epochs: int
    wall_s: float
    partial_epoch: Literal["discarded", "kept"] | None = None

    def message(self) -> str:
        """One line for logs and reports."""
        cut = {"discarded": "; the cut epoch's updates were discarded",
               "kept": "; inside the first epoch, whose partial updates were kept"}.get(self.partial_epoch or "", "")
        return (f"stopped by time_budget_s={self.budget_s:g} after {self.epochs_done} of {self.epochs} epochs "
                f"({self.wall_s:.1f} s){cut}: results depend on machine speed")

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (with the message)."""
        return {**asdict(self), "message": self.message()}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> BudgetStop | None:
        """The stop written by :meth:`to_json` (None stays None)."""
        if not data:
            return None
        return cls(float(data["budget_s"]), int(data["epochs_done"]), int(data["epochs"]), float(data["wall_s"]),
                   data.get("partial_epoch"))


def topk_excluding(
    scores: torch.Tensor, k: int, exclude: sp.csr_matrix | None, user_ids: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k (values, indices) of ``scores`` [batch, n_items] after setting excluded items to -inf.

    Equal scores go to the lower item id (:func:`topk_lowest_id`). Rows with fewer than ``k`` allowed items are
    padded with index -1 and score -inf.
    """
    scores = scores.float()
    if exclude is not None:
        rows = exclude[user_ids]
        counts = np.diff(rows.indptr)
        if rows.nnz:
            r = torch.from_numpy(np.repeat(np.arange(len(user_ids)), counts)).to(scores.device)
            c = torch.from_numpy(rows.indices.astype(np.int64)).to(scores.device)
            scores = scores.clone()
            scores[r, c] = float("-inf")
    k_eff = min(k, scores.shape[1])
    values, indices = topk_lowest_id(scores, k_eff)
    indices = torch.where(torch.isneginf(values), torch.full_like(indices, PAD_ITEM), indices)
    if k_eff < k:
        pad = k - k_eff
        values = torch.cat([values, values.new_full((values.shape[0], pad), float("-inf"))], dim=1)
        indices = torch.cat([indices, indices.new_full((indices.shape[0], pad), PAD_ITEM)], dim=1)
    return values, indices


def topk_lowest_id(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k largest (values, column indices) of each row of ``scores`` [rows, n], k ≤ n; equal scores go to the
    lower column index, both in which tied entries make the cut and in their order — rankstack's one tie rule.

    ``torch.topk`` leaves both unspecified. Here: its top k + 1, re-sorted by (value descending, index
    ascending); a row whose (k + 1)-th value equals its k-th has ties across the cut, and only in such rows are
    the tied slots refilled with the lowest indices holding that value.
    """
    n = scores.shape[1]
    values, indices = torch.topk(scores, min(k + 1, n), dim=1)
    if k == 0 or scores.shape[0] == 0:
        return values[:, :k], indices[:, :k]
    indices, by_index = torch.sort(indices, dim=1)
    values = values.gather(1, by_index)
    by_value = torch.sort(values, dim=1, descending=True, stable=True).indices
    values, indices = values.gather(1, by_value), indices.gather(1, by_value)
    if k == n:
        return values, indices
    short = values[:, k] == values[:, k - 1]
    values, indices = values[:, :k].contiguous(), indices[:, :k].contiguous()
    if bool(short.any()):
        _refill_ties(scores, values, indices, torch.nonzero(short).squeeze(1))
    return values, indices


def _refill_ties(scores: torch.Tensor, values: torch.Tensor, indices: torch.Tensor, rows: torch.Tensor) -> None:
    """In ``rows``, whose k-th value ties with entries left out, put the lowest indices holding that value into
    the slots it occupies (the last ones of the row), in place."""
    k = indices.shape[1]
    kth = values[rows, k - 1 :]
    need = (values[rows] == kth).sum(dim=1)
    block = scores if len(rows) == scores.shape[0] else scores.index_select(0, rows)
    at, cols = torch.nonzero(block == kth, as_tuple=True)  # row-major: each row's tied indices, ascending
    count = torch.bincount(at, minlength=len(rows))
    rank = torch.arange(len(at), device=scores.device) - (torch.cumsum(count, dim=0) - count)[at]
    keep = rank < need[at]
    at, rank = at[keep], rank[keep]
    indices[rows[at], k - need[at] + rank] = cols[keep]


def sparse_topk(scores: sp.csr_matrix, k: int, exclude: sp.csr_matrix | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (item ids, scores) [rows, k] among each row's stored entries of ``scores``, minus ``exclude``'s.

    Per row a partial sort of its stored entries only, never a dense [rows, n_items] matrix: for sources whose
    scores are sparse (item-kNN). Ties go to the lower item id; short rows are padded with -1 / -inf.
    """
    scores = sp.csr_matrix(scores, dtype=np.float32)
    n_rows = scores.shape[0]
    out_ids = np.full((n_rows, k), PAD_ITEM, dtype=np.int64)
    out_scores = np.full((n_rows, k), -np.inf, dtype=np.float32)
    blocked = np.zeros(scores.shape[1], dtype=bool)
    for row in range(n_rows):
        at = slice(scores.indptr[row], scores.indptr[row + 1])
        items, values = scores.indices[at], scores.data[at]
        if exclude is not None:
            seen = exclude.indices[exclude.indptr[row]: exclude.indptr[row + 1]]
            blocked[seen] = True
            keep = ~blocked[items]
            blocked[seen] = False
            items, values = items[keep], values[keep]
        if len(values) > k:  # everything tied with the k-th value competes, so ties at the cut go by item id too
            near = values >= np.partition(values, len(values) - k)[len(values) - k]
            items, values = items[near], values[near]
        order = np.lexsort((items, -values))[:k]
        out_ids[row, : len(order)], out_scores[row, : len(order)] = items[order], values[order]
    return out_ids, out_scores


def rows_topk(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (item ids, float32 scores) [rows, k] among each row's nonzero entries of dense ``scores``.

    The same lists as :func:`sparse_topk` on ``sp.csr_matrix(scores)``: ties go to the lower item id, short rows
    are padded with -1 / -inf. Only the entries that can make a row's top k (see :func:`top_candidates`) are
    sorted, all rows in one sort.
    """
    n_rows, n_cols = scores.shape
    scores = np.asarray(scores, dtype=np.float32)
    flat = np.flatnonzero(top_candidates(scores, k))  # (row, item) order
    rows, items = np.divmod(flat, n_cols)
    item_bits = max(n_cols - 1, 1).bit_length()
    if n_rows < 1 << (31 - item_bits):  # one int64 key (row, value descending, item): a plain sort, no argsort
        key = np.sort((rows << (32 + item_bits)) | (descending_key(scores.ravel()[flat]) << item_bits) | items)
        rows, items = key >> (32 + item_bits), key & ((1 << item_bits) - 1)
        return place_in_slots(rows, items, scores[rows, items], n_rows, k)
    values = scores.ravel()[flat]
    order = stable_lexsort((-values, rows))  # items stay ascending among ties
    return place_in_slots(rows[order], items[order], values[order], n_rows, k)


def top_candidates(scores: np.ndarray, k: int) -> np.ndarray:
    """Bool mask [rows, n]: per row, the nonzero entries at or above its k-th largest value (all of them when fewer
    than k are positive) or a superset of those.

    A cut c is tried first: the (2k / s)-th largest of every s-th entry; where c > 0 and at least k entries reach
    it, the k-th largest is ≥ c, so ``scores >= c`` holds the top k and its ties. Other rows get an exact
    partition. The sample's partition is s times smaller than the row's.
    """
    n_cols = scores.shape[1]
    if k >= n_cols:
        return scores != 0
    stride = n_cols // (8 * k)
    if stride < 4:
        return _at_or_above_kth(scores, k)
    rank = -(-2 * k // stride)
    sample = np.negative(scores[:, ::stride])
    sample.partition(rank - 1, axis=1)
    cut = -sample[:, rank - 1]
    keep = scores >= cut[:, None]
    redo = np.flatnonzero((cut <= 0) | (np.count_nonzero(keep, axis=1) < k))
    if len(redo):
        keep[redo] = _at_or_above_kth(scores[redo], k)
    return keep


def _at_or_above_kth(scores: np.ndarray, k: int) -> np.ndarray:
    """Bool mask: the nonzero entries at or above the row's k-th largest nonzero value (all nonzero entries when
    there are at most k, or when that value is ≤ 0), from a partition of each row's nonzero values only."""
    keep = scores != 0
    for row in np.flatnonzero(np.count_nonzero(keep, axis=1) > k).tolist():
        values = scores[row][keep[row]]
        kth = np.partition(values, len(values) - k)[len(values) - k]
        if kth > 0:
            keep[row] &= scores[row] >= kth
    return keep


def descending_key(values: np.ndarray) -> np.ndarray:
    """int64 in [0, 2³²) per float32 value, ascending as the values descend (the IEEE bits, sign-folded)."""
    bits = np.asarray(values, dtype=np.float32).view(np.uint32).astype(np.int64)
    ascending = np.where(bits >= 1 << 31, (1 << 32) - 1 - bits, bits + (1 << 31))
    return (1 << 32) - 1 - ascending


def stable_lexsort(keys: Sequence[np.ndarray]) -> np.ndarray:
    """``np.lexsort(keys)`` (last key primary, full ties keep input order) as one stable argsort per key, last
    key last: the same permutation, several times faster than ``lexsort`` on the short arrays of one request."""
    order = np.argsort(keys[0], kind="stable")
    for key in keys[1:]:
        order = order[np.argsort(key[order], kind="stable")]
    return order


def place_in_slots(rows: np.ndarray, items: np.ndarray, values: np.ndarray, n_rows: int,
                   k: int) -> tuple[np.ndarray, np.ndarray]:
    """[n_rows, k] (ids, float32 scores) from entries sorted by row then rank: each row's first ``k``, padded."""
    slot = np.arange(len(rows)) - np.searchsorted(rows, np.arange(n_rows))[rows]
    fits = slot < k
    out_ids = np.full((n_rows, k), PAD_ITEM, dtype=np.int64)
    out_scores = np.full((n_rows, k), -np.inf, dtype=np.float32)
    at = rows[fits] * k + slot[fits]  # flat positions: one index array, numpy's fast path
    out_ids.ravel()[at] = items[fits]
    out_scores.ravel()[at] = values[fits]
    return out_ids, out_scores


class Retriever(Protocol):
    """What the pipeline's retrieval stage calls: a ``CandidateSource``, or one served from a vector index."""

    def retrieve(self, user_ids: np.ndarray, k: int) -> Candidates:
        """Top-``k`` candidates per user, the user's training items excluded."""
        ...


class CandidateSource(ABC):
    """A retrieval model. Subclasses implement :meth:`fit` and :meth:`score`; retrieval is shared."""

    name: ClassVar[str]
    config_class: ClassVar[type[SourceConfig]]
    budget_stop_: BudgetStop | None = None  # set by fit when a wall-clock budget ended training early

    def __init__(self, config: SourceConfig | None = None) -> None:
        self.config = config if config is not None else self.config_class()
        self.train_: sp.csr_matrix | None = None

    @abstractmethod
    def fit(self, dataset: Dataset) -> CandidateSource:
        """Learn from the (training) dataset; returns ``self``."""

    @abstractmethod
    def score(self, user_ids: np.ndarray) -> torch.Tensor:
        """Scores of every item for each user: float tensor [len(user_ids), n_items]; higher is better."""

    def _require_fitted(self) -> sp.csr_matrix:
        if self.train_ is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit(dataset) first")
        return self.train_

    def retrieve(self, user_ids: np.ndarray, k: int, *, exclude_seen: bool = True) -> Candidates:
        """Top-``k`` candidates per user, by default without the items each user saw in training."""
        train = self._require_fitted()
        user_ids = np.asarray(user_ids, dtype=np.int64)
        with torch.no_grad():
            values, indices = topk_excluding(
                self.score(user_ids), k, train if exclude_seen else None, user_ids
            )
        return Candidates(indices.cpu().numpy(), values.cpu().numpy(), source=self.name)
