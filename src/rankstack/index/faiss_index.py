"""Approximate inner-product search with FAISS: HNSW graph and IVF-Flat inverted lists.

Both search by inner product. HNSW graphs are built for metric spaces, so by default the HNSW index
applies the MIPS → nearest-neighbour reduction of Bachrach et al. (RecSys 2014): every item x gets an
extra coordinate √(M² − ‖x‖²) (M = the largest norm) and queries get 0, so that
‖q̃ − x̃‖² = ‖q‖² + M² − 2⟨q, x⟩ and the L2 order of the augmented vectors *is* the inner-product order.
Returned scores are always the exact inner products ⟨q, x⟩ of the returned ids.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import faiss
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from rankstack.index.vector_index import VectorIndex, Vectors, as_float32
from rankstack.io import atomic_write

GRAPH_FILE = "hnsw.faiss"
LISTS_FILE = "ivf.faiss"


def _write_faiss(index: faiss.Index | None, path: Path) -> None:
    """``faiss.write_index`` to a temp file renamed into place (an empty index cannot be saved)."""
    if index is None:
        raise RuntimeError("the index is empty: build it before saving")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as tmp:
        faiss.write_index(index, str(tmp))


def _read_faiss(path: Path, ntotal: int, dim: int) -> faiss.Index:
    """A saved FAISS index, checked to hold ``ntotal`` vectors of ``dim`` (``ValueError`` naming the file)."""
    if not path.is_file():
        raise ValueError(f"{path}: missing")
    try:
        index = faiss.read_index(str(path))
    except RuntimeError as exc:
        raise ValueError(f"{path}: not a readable FAISS index ({exc})") from None
    if index.ntotal != ntotal or index.d != dim:
        raise ValueError(f"{path}: holds {index.ntotal} vectors of dim {index.d}, the model has {ntotal} of dim {dim}")
    return index


class FaissHNSWConfig(BaseModel):
    """``m`` graph degree, ``ef_construction`` / ``ef_search`` beam widths; ``mips_to_l2`` see module doc."""

    model_config = ConfigDict(extra="forbid")
    m: int = Field(default=32, ge=2)
    ef_construction: int = Field(default=100, ge=1)
    ef_search: int = Field(default=256, ge=1)
    mips_to_l2: bool = True


class FaissIVFFlatConfig(BaseModel):
    """``nlist`` inverted lists (k-means cells, capped at n/39), ``nprobe`` cells visited per query."""

    model_config = ConfigDict(extra="forbid")
    nlist: int = Field(default=1024, ge=1)
    nprobe: int = Field(default=32, ge=1)
    max_train_points: int = Field(default=200_000, ge=1)
    seed: int = 0


def _inner_products(vectors: np.ndarray, queries: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """⟨q_i, x_{ids[i, j]}⟩ for every returned id (−inf where the id is −1)."""
    safe = np.where(ids >= 0, ids, 0)
    scores = np.einsum("nkd,nd->nk", vectors[safe], queries).astype(np.float32)
    scores[ids < 0] = -np.inf
    return scores


class FaissHNSWIndex(VectorIndex):
    """Hierarchical navigable small-world graph (Malkov & Yashunin 2018) over inner product."""

    def __init__(self, config: FaissHNSWConfig | None = None) -> None:
        super().__init__()
        self.config = config or FaissHNSWConfig()
        self.vectors_ = np.zeros((0, 0), np.float32)
        self.max_norm_sq_ = 0.0
        self.index_: faiss.IndexHNSWFlat | None = None

    @property
    def ntotal(self) -> int:
        """Number of indexed vectors."""
        return int(self.vectors_.shape[0])

    def is_exact(self) -> bool:
        """Approximate."""
        return False

    def reset(self) -> None:
        """Remove every vector."""
        self.vectors_ = np.zeros((0, 0), np.float32)
        self.max_norm_sq_ = 0.0
        self.index_ = None
        self.dim_ = None

    def _new_graph(self, dim: int) -> faiss.IndexHNSWFlat:
        cfg = self.config
        if cfg.mips_to_l2:
            index = faiss.IndexHNSWFlat(dim + 1, cfg.m, faiss.METRIC_L2)
        else:
            index = faiss.IndexHNSWFlat(dim, cfg.m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = cfg.ef_construction
        return index

    def _augment(self, arr: np.ndarray) -> np.ndarray:
        extra = np.sqrt(np.maximum(self.max_norm_sq_ - np.einsum("nd,nd->n", arr, arr), 0.0))
        return np.ascontiguousarray(np.hstack([arr, extra[:, None].astype(np.float32)]))

    def add(self, vectors: Vectors) -> FaissHNSWIndex:
        """Insert into the graph; with ``mips_to_l2`` a vector longer than all before rebuilds it."""
        arr = as_float32(vectors)
        self._check_dim(arr)
        dim = int(arr.shape[1])
        old = self.vectors_ if self.ntotal else np.zeros((0, dim), np.float32)
        self.vectors_ = np.concatenate([old, arr]) if len(old) else arr.copy()
        if not self.config.mips_to_l2:
            if self.index_ is None:
                self.index_ = self._new_graph(dim)
            self.index_.add(arr)
            return self
        new_max = float(np.einsum("nd,nd->n", arr, arr).max(initial=0.0))
        if self.index_ is None or new_max > self.max_norm_sq_:
            self.max_norm_sq_ = max(self.max_norm_sq_, new_max)
            self.index_ = self._new_graph(dim)
            self.index_.add(self._augment(self.vectors_))
        else:
            self.index_.add(self._augment(arr))
        return self

    def write(self, folder: Path) -> None:
        """Save the graph (``hnsw.faiss``); the vectors are the model's item vectors."""
        _write_faiss(self.index_, Path(folder) / GRAPH_FILE)

    def read(self, folder: Path, vectors: Vectors) -> FaissHNSWIndex:
        """The saved graph over ``vectors`` (the norm augmentation is recomputed from them)."""
        arr = as_float32(vectors)
        self.reset()
        self._check_dim(arr)
        dim = int(arr.shape[1]) + (1 if self.config.mips_to_l2 else 0)
        graph = _read_faiss(Path(folder) / GRAPH_FILE, len(arr), dim)
        self.vectors_ = arr.copy()
        self.max_norm_sq_ = float(np.einsum("nd,nd->n", arr, arr).max(initial=0.0)) if self.config.mips_to_l2 else 0.0
        self.index_ = cast(faiss.IndexHNSWFlat, graph)
        return self

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Graph search, then exact inner products of the returned ids."""
        assert self.index_ is not None
        self.index_.hnsw.efSearch = max(self.config.ef_search, k)
        q = queries
        if self.config.mips_to_l2:
            q = np.ascontiguousarray(np.hstack([queries, np.zeros((len(queries), 1), np.float32)]))
        _, ids = self.index_.search(q, k)
        return _inner_products(self.vectors_, queries, ids), ids


class FaissIVFFlatIndex(VectorIndex):
    """Inverted file over k-means cells (inner-product quantizer); exact scores within visited cells."""

    def __init__(self, config: FaissIVFFlatConfig | None = None) -> None:
        super().__init__()
        self.config = config or FaissIVFFlatConfig()
        self.index_: faiss.IndexIVFFlat | None = None

    @property
    def ntotal(self) -> int:
        """Number of indexed vectors."""
        return 0 if self.index_ is None else int(self.index_.ntotal)

    def is_exact(self) -> bool:
        """Approximate (exact only when nprobe ≥ nlist)."""
        return False

    def reset(self) -> None:
        """Remove every vector and the trained cells."""
        self.index_ = None
        self.dim_ = None

    def add(self, vectors: Vectors) -> FaissIVFFlatIndex:
        """Train the cells on the first batch (a seeded subsample), then add to the inverted lists."""
        arr = as_float32(vectors)
        self._check_dim(arr)
        if self.index_ is None:
            cfg = self.config
            dim = int(arr.shape[1])
            nlist = max(1, min(cfg.nlist, len(arr) // 39))
            quantizer = faiss.IndexFlatIP(dim)
            index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
            index.cp.seed = cfg.seed
            rng = np.random.default_rng(cfg.seed)
            sample = arr if len(arr) <= cfg.max_train_points else arr[
                np.sort(rng.choice(len(arr), cfg.max_train_points, replace=False))]
            index.train(sample)
            self.quantizer_ = quantizer  # keep the quantizer alive as long as the index
            self.index_ = index
        self.index_.add(arr)
        return self

    def write(self, folder: Path) -> None:
        """Save the trained cells and the inverted lists (``ivf.faiss``)."""
        _write_faiss(self.index_, Path(folder) / LISTS_FILE)

    def read(self, folder: Path, vectors: Vectors) -> FaissIVFFlatIndex:
        """The saved cells and lists; ``vectors`` only check that the model still has as many items."""
        arr = as_float32(vectors)
        self.reset()
        self._check_dim(arr)
        self.index_ = cast(faiss.IndexIVFFlat, _read_faiss(Path(folder) / LISTS_FILE, len(arr), int(arr.shape[1])))
        return self

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Visit the ``nprobe`` cells with the largest ⟨q, centroid⟩."""
        assert self.index_ is not None
        self.index_.nprobe = min(self.config.nprobe, self.index_.nlist)
        scores, ids = self.index_.search(queries, k)
        return scores, ids
