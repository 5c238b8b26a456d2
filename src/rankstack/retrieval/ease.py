"""EASE (Steck, WWW 2019): a closed-form linear item-item autoencoder, with a memory check made before the dense
buffers are allocated and a λ path that builds the Gram matrix once for several λ."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Literal

import numpy as np
import scipy.sparse as sp
import torch
from pydantic import Field
from rich.progress import Progress, TaskID

from rankstack.data.dataset import Dataset
from rankstack.device import resolve_device
from rankstack.progress import PlainProgress, new_progress
from rankstack.retrieval.ease_memory import check_memory, dense_bytes, gb, gram_block_rows
from rankstack.retrieval.source import CandidateSource, SourceConfig

PathMethod = Literal["cholesky", "eigh"]
# dense n × n float32 buffers held at the peak: the fit solves in the Gram matrix's own buffer; the Cholesky path
# keeps the Gram matrix next to a work buffer; the eigen path holds G, V and LAPACK syevd's 2n² workspace.
PATH_BUFFERS: dict[PathMethod, int] = {"cholesky": 2, "eigh": 4}
STAGE_LINES_MIN_ITEMS = 5000  # from this catalogue size a fit takes seconds or more: say each stage as it starts


class EASEConfig(SourceConfig):
    """``l2`` is λ; ``device`` is "auto" (CUDA when present), "cpu" or "cuda"; ``max_memory_gb`` caps the memory
    the fit may use (default: what the device reports available), checked before anything is allocated."""

    l2: float = Field(200.0, gt=0.0)
    device: str = "auto"
    max_memory_gb: float | None = Field(None, gt=0.0)


def inverse_spd_(gram: torch.Tensor) -> torch.Tensor:
    """Invert a symmetric positive-definite matrix in place (Cholesky, then its inverse, in one buffer).

    LAPACK works in place on a column-major buffer; a row-major one is first copied, so pass ``g.T`` for a
    row-major symmetric ``g`` (same values) to avoid that copy.
    """
    info = torch.empty((), dtype=torch.int32, device=gram.device)
    factor, info = torch.linalg.cholesky_ex(gram, out=(gram, info))
    if int(info) != 0:
        raise np.linalg.LinAlgError(f"EASE: Gram matrix is not positive definite (cholesky info={int(info)})")
    return torch.cholesky_inverse(factor, out=factor)


def gram_matrix(x: sp.csr_matrix, advance: Callable[[int], None] | None = None) -> np.ndarray:
    """G = XᵀX as a dense row-major float32 [n_items, n_items], built in row blocks (no sparse n × n product)."""
    n = x.shape[1]
    xt = sp.csr_matrix(x.T, dtype=np.float32)
    x = sp.csr_matrix(x, dtype=np.float32)
    gram = np.zeros((n, n), dtype=np.float32)
    rows = gram_block_rows(n)
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        (xt[start:stop] @ x).toarray(out=gram[start:stop])  # csr → dense adds into the zeroed rows
        if advance is not None:
            advance(stop - start)
    return gram


def weights_from_inverse_(p: torch.Tensor) -> torch.Tensor:
    """B = I − P·diag(1/diag P) in P's buffer: B_ij = −P_ij / P_jj off the diagonal, B_jj = 0."""
    diag = torch.diagonal(p).clone()
    p.div_(-diag.unsqueeze(0))
    p.fill_diagonal_(0.0)
    return p


def weights_from_gram_(gram: torch.Tensor, l2: float) -> torch.Tensor:
    """B(λ) in the buffer of the row-major symmetric G (overwritten): P = (G + λI)⁻¹ by Cholesky, then B."""
    gram.diagonal().add_(l2)
    p = inverse_spd_(gram.T).T  # G is symmetric: its column-major view is G itself, so LAPACK needs no copy
    return weights_from_inverse_(p)


def weights_from_eigen_(out: torch.Tensor, values: torch.Tensor, vectors: torch.Tensor, l2: float) -> torch.Tensor:
    """B(λ) into ``out`` from G = V diag(s) Vᵀ: P(λ) = V diag(1/(s + λ)) Vᵀ, built in row blocks, then B."""
    n = vectors.shape[0]
    inv = 1.0 / (values + l2)
    rows = gram_block_rows(n)
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        torch.mm(vectors[start:stop] * inv, vectors.T, out=out[start:stop])
    return weights_from_inverse_(out)


class _Stages:
    """One progress task over the fit's work units, with a plain stderr line per stage when not on a terminal
    (the LAPACK calls give no progress of their own, so a long fit says what it is doing)."""

    def __init__(self, bar: Progress, description: str, total: int, *, lines: bool) -> None:
        self.bar, self.description = bar, description
        self.lines = lines and isinstance(bar, PlainProgress)
        self.task: TaskID = bar.add_task(description, total=total)

    def stage(self, what: str, units: int = 0) -> None:
        """Advance by ``units`` and name the next stage."""
        self.bar.update(self.task, advance=units, description=f"{self.description}: {what}")
        if self.lines:
            print(f"{self.description}: {what}", file=sys.stderr, flush=True)

    def advance(self, units: int) -> None:
        """Advance by ``units`` within the current stage (the last call ends the task)."""
        self.bar.advance(self.task, units)


class EASE(CandidateSource):
    """B = argmin ‖X − XB‖² + λ‖B‖² s.t. diag(B) = 0, in closed form: P = (XᵀX + λI)⁻¹, B_ij = −P_ij / P_jj.

    score(u, ·) = X_u B.  Fit is float32 and dense in the number of items: one n² buffer, inverted in place.
    """

    name = "ease"
    config_class = EASEConfig
    config: EASEConfig
    fresh_scores = True  # score() returns a new tensor each call: the evaluator may mask it in place

    def fit(self, dataset: Dataset) -> EASE:
        """Solve for the item-item weight matrix B (memory checked first: one n × n float32 buffer)."""
        x = self._prepare(dataset, buffers=1)
        n = x.shape[1]
        with new_progress() as bar:
            stages = _Stages(bar, f"EASE fit ({n:,} items, {self.device_.type})", total=2 * n,
                             lines=n >= STAGE_LINES_MIN_ITEMS)
            stages.stage(f"Gram matrix XᵀX ({gb(dense_bytes(n))})")
            gram = torch.from_numpy(gram_matrix(x, stages.advance)).to(self.device_)
            stages.stage(f"Cholesky inverse, λ={self.config.l2:g}")
            self.weights_ = weights_from_gram_(gram, self.config.l2)
            stages.advance(n)
        return self

    def fit_path(self, dataset: Dataset, l2s: Sequence[float], *, method: PathMethod = "cholesky") -> Iterator[EASE]:
        """Fit for each λ in ``l2s`` in turn, yielding ``self`` with ``config.l2`` and ``weights_`` set; the
        Gram matrix is built once. ``weights_`` is overwritten by the next step (score it before advancing).

        ``cholesky``: per λ, copy G and solve in place (2 n² buffers). ``eigh``: one decomposition
        G = V diag(s) Vᵀ, then P(λ) = V diag(1/(s + λ)) Vᵀ per λ (4 n² buffers at the decomposition; Steck 2019
        notes the closed form; the eigenbasis trick is standard ridge-regression algebra).
        """
        if not l2s or any(not (float(v) > 0) for v in l2s):
            raise ValueError(f"l2s must be a non-empty list of values > 0, got {list(l2s)}")
        x = self._prepare(dataset, buffers=PATH_BUFFERS[method])
        n = x.shape[1]
        with new_progress() as bar:
            stages = _Stages(bar, f"EASE λ path ({n:,} items, {len(l2s)} λ, {method})", total=n * (1 + len(l2s)),
                             lines=n >= STAGE_LINES_MIN_ITEMS)
            stages.stage(f"Gram matrix XᵀX ({gb(dense_bytes(n))})")
            gram = torch.from_numpy(gram_matrix(x, stages.advance)).to(self.device_)
            if method == "eigh":
                stages.stage("eigendecomposition of XᵀX")
                values, vectors = torch.linalg.eigh(gram)
                del gram
            work = torch.empty_like(vectors if method == "eigh" else gram)
            for step, l2 in enumerate(l2s):
                stages.stage(f"λ={float(l2):g} ({step + 1}/{len(l2s)})", n if step else 0)
                if method == "eigh":
                    self.weights_ = weights_from_eigen_(work, values, vectors, float(l2))
                else:
                    self.weights_ = weights_from_gram_(work.copy_(gram), float(l2))
                self.config = self.config.model_copy(update={"l2": float(l2)})
                yield self
            stages.advance(n)

    def _prepare(self, dataset: Dataset, *, buffers: int) -> sp.csr_matrix:
        """The training matrix and device, after checking ``buffers`` dense n × n matrices fit in memory."""
        x = dataset.interaction_matrix(binary=True)
        self.device_ = resolve_device(self.config.device)
        check_memory(x.shape[1], buffers, device=self.device_, max_memory_gb=self.config.max_memory_gb)
        self.train_ = x
        return x

    def score(self, user_ids: np.ndarray) -> torch.Tensor:
        """X_u B for a batch of users: SciPy CSR × dense (float32) on the CPU, torch sparse × dense on CUDA."""
        train = self._require_fitted()
        rows = train[user_ids]
        if self.device_.type == "cpu":  # SciPy's CSR kernel was 2x faster than torch.sparse.mm here
            if not self.weights_.is_contiguous():  # SciPy would copy a column-major B for every batch
                self.weights_ = self.weights_.contiguous()
            return torch.from_numpy(rows @ self.weights_.numpy())
        coo = rows.tocoo()
        idx = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
        xu = torch.sparse_coo_tensor(idx, torch.from_numpy(coo.data), size=coo.shape, check_invariants=False)
        return torch.sparse.mm(xu.to(self.device_), self.weights_)
