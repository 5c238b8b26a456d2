"""Exact inner-product search: batched matmul + top-k in torch (CPU or GPU)."""

from __future__ import annotations

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from rankstack.device import resolve_device
from rankstack.index.topk import topk_lowest_id
from rankstack.index.vector_index import VectorIndex, Vectors, as_float32


class ExactIndexConfig(BaseModel):
    """``batch_size`` queries per matmul; ``device`` "auto", "cpu" or "cuda"."""

    model_config = ConfigDict(extra="forbid")
    batch_size: int = Field(default=1024, ge=1)
    device: str = "auto"


class ExactIndex(VectorIndex):
    """scores = Q Xᵀ, top-k per row: exact maximum inner-product search (equal scores: lower id first)."""

    def __init__(self, config: ExactIndexConfig | None = None) -> None:
        super().__init__()
        self.config = config or ExactIndexConfig()
        self.device_ = resolve_device(self.config.device)
        self.vectors_ = torch.empty(0, 0, device=self.device_)

    @property
    def ntotal(self) -> int:
        """Number of indexed vectors."""
        return int(self.vectors_.shape[0])

    def is_exact(self) -> bool:
        """Always exact."""
        return True

    def reset(self) -> None:
        """Remove every vector."""
        self.vectors_ = torch.empty(0, 0, device=self.device_)
        self.dim_ = None

    def add(self, vectors: Vectors) -> ExactIndex:
        """Append vectors on the index device."""
        arr = as_float32(vectors)
        self._check_dim(arr)
        new = torch.from_numpy(arr).to(self.device_)
        self.vectors_ = new if self.ntotal == 0 else torch.cat([self.vectors_, new])
        return self

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Batched Q Xᵀ then the top k, equal scores to the lower id (:func:`topk_lowest_id`)."""
        out_s, out_i = [], []
        with torch.no_grad():
            for start in range(0, len(queries), self.config.batch_size):
                q = torch.from_numpy(queries[start : start + self.config.batch_size]).to(self.device_)
                values, ids = topk_lowest_id(q @ self.vectors_.T, k)
                out_s.append(values.cpu().numpy())
                out_i.append(ids.cpu().numpy())
        if not out_s:
            return np.zeros((0, k), np.float32), np.zeros((0, k), np.int64)
        return np.concatenate(out_s), np.concatenate(out_i)
