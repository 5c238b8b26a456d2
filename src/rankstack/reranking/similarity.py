"""Item–item similarity for diversity: cosine of item embeddings or of category multi-hot vectors."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl


class ItemSimilarity:
    """``S_ij = cos(v_i, v_j)`` for i ≠ j and ``S_ii = 1``, from unit item vectors ``v̂`` [n_items, d].

    As a matrix ``S = V̂ V̂ᵀ + diag(1 − ‖v̂_i‖²)``: a Gram matrix plus a non-negative diagonal, so it is
    positive semi-definite (a valid DPP similarity kernel). Items without a vector (zero rows) are similar
    to nothing but themselves.
    """

    def __init__(self, vectors: np.ndarray) -> None:
        vecs = np.asarray(vectors, dtype=np.float64)
        if vecs.ndim != 2:
            raise ValueError(f"item vectors must be 2-D [n_items, dim], got shape {vecs.shape}")
        if not np.isfinite(vecs).all():
            raise ValueError("item vectors contain NaN or infinite values")
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        self.unit_ = np.divide(vecs, norms, out=np.zeros_like(vecs), where=norms > 0)
        self.residual_ = 1.0 - np.einsum("nd,nd->n", self.unit_, self.unit_)
        self.categories_ = one_hot_codes(self.unit_)

    @classmethod
    def from_embeddings(cls, embeddings: np.ndarray) -> ItemSimilarity:
        """Cosine similarity of item embeddings [n_items, d]."""
        return cls(embeddings)

    @classmethod
    def from_categories(cls, categories: Sequence[Sequence[str] | str | None] | pl.Series) -> ItemSimilarity:
        """Cosine of category multi-hot vectors; ``categories[i]`` is item i's category or list of them."""
        return cls(category_multi_hot(categories)[0])

    @property
    def n_items(self) -> int:
        """Number of items covered."""
        return int(self.unit_.shape[0])

    def gather(self, item_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(unit vectors [..., d], diagonal residuals [...]) of ``item_ids`` (ids < 0 give zeros)."""
        ids = np.asarray(item_ids)
        if ids.size and ids.max() >= self.n_items:
            raise ValueError(f"item id {int(ids.max())} is outside the similarity's {self.n_items} items")
        valid = ids >= 0
        if valid.all():
            return np.take(self.unit_, ids, axis=0), np.take(self.residual_, ids)
        safe = np.where(valid, ids, 0)
        return np.take(self.unit_, safe, axis=0) * valid[..., None], np.take(self.residual_, safe) * valid

    def gather_categories(self, item_ids: np.ndarray) -> np.ndarray | None:
        """Category codes [...] of ``item_ids`` (-1: none or padding); None unless ``S_ij = [c_i = c_j ≥ 0]``."""
        if self.categories_ is None:
            return None
        ids = np.asarray(item_ids)
        if ids.size and ids.max() >= self.n_items:
            raise ValueError(f"item id {int(ids.max())} is outside the similarity's {self.n_items} items")
        return np.where(ids >= 0, self.categories_[np.where(ids >= 0, ids, 0)], -1)

    def matrix(self, item_ids: np.ndarray) -> np.ndarray:
        """Dense similarity block ``S[item_ids][:, item_ids]`` for a 1-D array of ids."""
        vecs, residual = self.gather(np.asarray(item_ids).reshape(-1))
        return vecs @ vecs.T + np.diag(residual)


def one_hot_codes(unit: np.ndarray) -> np.ndarray | None:
    """Each row's one non-zero column (-1 for zero rows) when every row is zero or a one-hot 1.0, else None."""
    if unit.shape[1] == 0:
        return np.full(unit.shape[0], -1, dtype=np.int64)
    nonzero = unit != 0
    count = nonzero.sum(axis=1)
    if count.max(initial=0) > 1:
        return None
    codes = np.where(count == 1, nonzero.argmax(axis=1), -1)
    ones = unit[np.flatnonzero(count == 1), codes[count == 1]]
    return codes if np.all(ones == 1.0) else None


def category_multi_hot(
    categories: Sequence[Sequence[str] | str | None] | pl.Series,
) -> tuple[np.ndarray, list[str]]:
    """(multi-hot float matrix [n_items, n_categories], sorted category names) from per-item categories."""
    values = categories.to_list() if isinstance(categories, pl.Series) else list(categories)
    per_item: list[list[str]] = []
    for value in values:
        if value is None:
            per_item.append([])
        elif isinstance(value, str):
            per_item.append([value])
        else:
            per_item.append([str(v) for v in value if v is not None])
    names = sorted({c for cats in per_item for c in cats})
    index = {c: j for j, c in enumerate(names)}
    out = np.zeros((len(per_item), len(names)), dtype=np.float64)
    rows = [i for i, cats in enumerate(per_item) for _ in cats]  # one assignment, not one per item (1M: 5.8 s)
    cols = [index[c] for cats in per_item for c in cats]
    out[rows, cols] = 1.0
    return out, names
