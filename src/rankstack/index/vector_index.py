"""The vector-index interface: maximum inner-product search over item vectors."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from rankstack.candidates import PAD_ITEM

Vectors = np.ndarray | torch.Tensor


def as_float32(vectors: Vectors) -> np.ndarray:
    """A C-contiguous float32 numpy copy-or-view of a 2-D array or tensor."""
    if isinstance(vectors, torch.Tensor):
        vectors = vectors.detach().float().cpu().numpy()
    arr = np.ascontiguousarray(vectors, dtype=np.float32)
    if arr.ndim != 2:
        raise ValueError(f"expected a 2-D [n, dim] array, got shape {arr.shape}")
    return arr


class VectorIndex(ABC):
    """Top-k by inner product s(q, x) = ⟨q, x⟩ — the similarity every rankstack model trains with.

    Ids are row positions in the order vectors were added (0..ntotal-1); short rows pad with id -1
    and score -inf. The metric is fixed: models whose training similarity is cosine normalise their
    vectors before adding them, so the index never silently switches to L2.
    """

    metric: ClassVar[str] = "inner_product"

    def __init__(self) -> None:
        self.dim_: int | None = None

    @property
    @abstractmethod
    def ntotal(self) -> int:
        """Number of indexed vectors."""

    @abstractmethod
    def is_exact(self) -> bool:
        """True when search returns the exact top-k."""

    @abstractmethod
    def add(self, vectors: Vectors) -> VectorIndex:
        """Append vectors (ids continue from ``ntotal``); returns ``self``."""

    @abstractmethod
    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Search with validated float32 queries and 1 ≤ k ≤ ntotal."""

    @abstractmethod
    def reset(self) -> None:
        """Remove every vector."""

    def build(self, vectors: Vectors) -> VectorIndex:
        """Replace the content with ``vectors``; returns ``self``."""
        self.reset()
        return self.add(vectors)

    def write(self, folder: Path) -> None:
        """Save what is costly to rebuild into ``folder`` (the vectors themselves are the model's, not saved)."""
        Path(folder).mkdir(parents=True, exist_ok=True)

    def read(self, folder: Path, vectors: Vectors) -> VectorIndex:
        """Restore an index saved by :meth:`write` over the same ``vectors``; this base rebuilds from them."""
        return self.build(vectors)

    def _check_dim(self, arr: np.ndarray) -> None:
        if self.dim_ is None:
            self.dim_ = int(arr.shape[1])
        elif arr.shape[1] != self.dim_:
            raise ValueError(f"vectors have dim {arr.shape[1]}, the index holds dim {self.dim_}")

    def search(self, queries: Vectors, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores float32 [n, k], ids int64 [n, k]) sorted by decreasing inner product, equal scores by increasing
        id (the tie rule of ``index.topk.topk_lowest_id``; an approximate index may still miss tied items)."""
        q = as_float32(queries)
        if k < 1:
            raise ValueError(f"k must be ≥ 1, got {k}")
        if self.ntotal == 0:
            raise RuntimeError(f"{type(self).__name__} is empty: call build(vectors) first")
        self._check_dim(q)
        k_eff = min(k, self.ntotal)
        scores, ids = self._search(q, k_eff)
        scores = np.asarray(scores, dtype=np.float32)
        ids = np.asarray(ids, dtype=np.int64)
        ids[ids < 0] = PAD_ITEM
        scores[ids < 0] = -np.inf
        if not self.is_exact():  # exact indexes rank ties by id already; approximate ones in any order
            order = np.lexsort((ids, -scores), axis=1)
            scores, ids = np.take_along_axis(scores, order, axis=1), np.take_along_axis(ids, order, axis=1)
        if k_eff < k:
            pad = k - k_eff
            scores = np.concatenate([scores, np.full((len(q), pad), -np.inf, np.float32)], axis=1)
            ids = np.concatenate([ids, np.full((len(q), pad), PAD_ITEM, np.int64)], axis=1)
        return scores, ids
