"""DPP re-ranking: greedy MAP inference with incremental Cholesky updates (Chen, Zhang & Zhou, NeurIPS 2018)."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from rankstack.reranking.diversity import DiversityConfig, DiversityReranker, fill_by_relevance
from rankstack.reranking.similarity import ItemSimilarity


class DPPConfig(DiversityConfig):
    """DPP settings: ``relevance_weight`` is θ; ``jitter`` ε is added to the similarity's diagonal."""

    method: Literal["dpp"] = "dpp"
    jitter: float = Field(default=1e-3, ge=0.0, description="ε in S + εI; keeps the kernel full rank")
    min_gain: float = Field(default=1e-10, gt=0.0, description="stop when every remaining d_i² is below this")


def quality_exponent(theta: float) -> float:
    """α = θ / (2(1 − θ)): Chen et al. (2018, §5) trade-off, ``log det L_Y = 2α Σ_{i∈Y} r_i + log det S_Y``."""
    if not 0.0 <= theta < 1.0:
        raise ValueError(f"theta must be in [0, 1), got {theta}")
    return theta / (2.0 * (1.0 - theta))


def dpp_log_det(similarity: np.ndarray, relevance: np.ndarray, subset: np.ndarray, theta: float,
                jitter: float = 0.0) -> float:
    """log det L_Y with L = diag(q)·(S + εI)·diag(q), q_i = exp(α·r_i), α = θ/(2(1−θ)) (numpy slogdet)."""
    sub = np.asarray(subset, dtype=np.int64)
    q = np.exp(quality_exponent(theta) * np.asarray(relevance, dtype=np.float64)[sub])
    block = similarity[np.ix_(sub, sub)] + jitter * np.eye(sub.size)
    sign, logdet = np.linalg.slogdet(q[:, None] * block * q[None, :])
    return float(logdet) if sign > 0 else float("-inf")


class DPP(DiversityReranker):
    """Greedy MAP of a DPP with kernel L = diag(q)·(S + εI)·diag(q), q_i = exp(α·r_i), α = θ/(2(1−θ)).

    Each step adds ``argmax_i log d_i²`` where d_i² = det(L_{Y∪i}) / det(L_Y) is kept up to date with one
    Cholesky row per step: ``e_i = (L_{ji} − ⟨c_j, c_i⟩) / d_j``, ``c_i ← [c_i, e_i]``, ``d_i² ← d_i² − e_i²``
    (Chen, Zhang & Zhou 2018, Algorithm 1), so a row costs O(N·k²) plus O(N·k·d) for the similarity rows.
    The quality factors out (d_i²(L) = q_i² d_i²(S)), so the updates run on S and the gain is
    ``log d_i²(S) + 2α r_i`` — no overflow of exp. When every remaining gain is below ``min_gain`` (a
    rank-deficient kernel with ε = 0), the rest of the slate is filled in relevance order.
    """

    name = "dpp"

    def __init__(self, similarity: ItemSimilarity, config: DPPConfig | None = None) -> None:
        super().__init__(similarity, config if config is not None else DPPConfig())

    def select(self, vecs: np.ndarray, residual: np.ndarray, relevance: np.ndarray, valid: np.ndarray,
               k: int) -> np.ndarray:
        """Positions [rows, k] in greedy pick order."""
        cfg = self.config
        assert isinstance(cfg, DPPConfig)
        n_rows, n = valid.shape
        rows = np.arange(n_rows)
        log_q2 = 2.0 * quality_exponent(cfg.relevance_weight) * relevance
        d2 = np.einsum("bnd,bnd->bn", vecs, vecs) + residual + cfg.jitter
        # 0 for a pickable entry, -inf once picked, padding, or with d_i² ≤ min_gain
        blocked = np.where(valid & (d2 > cfg.min_gain), 0.0, -np.inf)
        chol = np.zeros((n_rows, k, n))
        picks = np.full((n_rows, k), -1, dtype=np.int64)
        for t in range(k):
            gain = np.log(np.maximum(d2, cfg.min_gain)) + log_q2 + blocked
            j = gain.argmax(axis=1)
            ok = blocked[rows, j] == 0.0
            if not ok.any():
                break
            picks[:, t] = np.where(ok, j, -1)
            blocked[rows, j] = -np.inf
            blocked[~ok] = -np.inf
            if t == k - 1:
                break
            s_row = np.matmul(vecs, vecs[rows, j][:, :, None])[..., 0]
            s_row[rows, j] += residual[rows, j] + cfg.jitter
            dot = np.matmul(chol[rows, :t, j][:, None, :], chol[:, :t, :])[:, 0, :]
            e = (s_row - dot) / np.sqrt(np.maximum(d2[rows, j], cfg.min_gain))[:, None]
            chol[:, t, :] = e
            d2 -= e * e
            blocked[d2 <= cfg.min_gain] = -np.inf
        return fill_by_relevance(picks, relevance, valid)
