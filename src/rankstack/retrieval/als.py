"""Implicit-feedback matrix factorisation by alternating least squares (Hu, Koren & Volinsky, ICDM 2008),
fitted with the ``implicit`` library; serving needs only the saved factors (no ``implicit`` import here)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field

from rankstack.candidates import PAD_ITEM
from rankstack.data.dataset import Dataset
from rankstack.device import resolve_device
from rankstack.evaluation.fit_summary import FitSummary
from rankstack.retrieval.source import BudgetStop, CandidateSource, SourceConfig

FOLD_IN_BLOCK = 1 << 22  # floats of gathered item factors per fold-in block (users × history × factors)


class ALSConfig(SourceConfig):
    """``factors`` d, L2 ``regularization`` λ, confidence ``alpha`` (c_ui = α for every observed pair),
    ``iterations`` full sweeps (users then items; the epochs of other sources), stopped early by
    ``time_budget_s``. ``solver`` "cg" takes ``cg_steps`` conjugate-gradient steps per vector from the previous
    value (implicit's fast default), "cholesky" solves each one exactly. ``num_threads`` 0 uses every core;
    ``track_loss`` records the training loss per iteration (one more pass each); ``device`` is where scores are
    computed (fitting runs on the CPU)."""

    factors: int = Field(default=64, ge=1, le=4096)
    regularization: float = Field(default=0.01, gt=0)
    alpha: float = Field(default=1.0, gt=0)
    iterations: int = Field(default=15, ge=1)
    solver: Literal["cg", "cholesky"] = "cg"
    cg_steps: int = Field(default=3, ge=1)
    time_budget_s: float | None = Field(default=None, gt=0)
    num_threads: int = Field(default=0, ge=0)
    track_loss: bool = False
    seed: int = 0
    device: str = "auto"


class ALS(CandidateSource):
    """score(u, i) = ⟨x_u, y_i⟩, the factors minimising
    Σ_{u,i} c_ui (p_ui − ⟨x_u, y_i⟩)² + λ (Σ_u ‖x_u‖² + Σ_i ‖y_i‖²), p_ui = 1 for observed pairs (c_ui = α),
    else p_ui = 0 with c_ui = 1.

    A user's vector given the item factors Y and a history H (:meth:`fold_in`, what serving uses for fresh
    events): x = (YᵀY + λI + Σ_{i∈H} (α − 1) y_i y_iᵀ)⁻¹ α Σ_{i∈H} y_i — the user half-step of the fit.
    """

    name = "als"
    config_class = ALSConfig
    closed_form = False  # trained in sweeps: its fit reports them
    config: ALSConfig
    device_: torch.device
    user_factors_: torch.Tensor
    item_factors_: torch.Tensor
    history_: list[dict[str, float]]
    budget_stop_: BudgetStop | None
    _gram: torch.Tensor | None = None
    _gram_inverse: torch.Tensor | None = None

    def fit(self, dataset: Dataset) -> ALS:
        """Factorise the binary training matrix with ``implicit`` (:mod:`rankstack.retrieval.als_train`)."""
        from rankstack.retrieval.als_train import train_als

        train_als(self, dataset)
        return self

    def set_factors(self, user_factors: torch.Tensor, item_factors: torch.Tensor) -> None:
        """Keep the fitted factors (float32, on the configured device) and drop cached products."""
        if user_factors.ndim != 2 or item_factors.ndim != 2 or user_factors.shape[1] != item_factors.shape[1]:
            raise ValueError(f"factors must be [users, d] and [items, d], got {tuple(user_factors.shape)} and "
                             f"{tuple(item_factors.shape)}")
        self.device_ = resolve_device(self.config.device)
        self.user_factors_ = user_factors.float().to(self.device_)
        self.item_factors_ = item_factors.float().to(self.device_)
        self._gram = self._gram_inverse = None

    def score(self, user_ids: np.ndarray) -> torch.Tensor:
        """⟨x_u, y_i⟩ for every item, x_u the fitted factors."""
        return self.user_vectors(user_ids) @ self.item_factors_.T

    def user_vectors(self, user_ids: np.ndarray) -> torch.Tensor:
        """Fitted user factors [users, d] (the queries of a VectorIndex over ``item_vectors``)."""
        self._require_fitted()
        users = np.asarray(user_ids, dtype=np.int64)
        if users.size and (int(users.min()) < 0 or int(users.max()) >= self.user_factors_.shape[0]):
            raise ValueError(f"user ids must lie in [0, {self.user_factors_.shape[0]}), got {int(users.min())} … "
                             f"{int(users.max())}: fold unknown users in from their history (fold_in)")
        return self.user_factors_[torch.as_tensor(users, device=self.device_)]

    def item_vectors(self) -> torch.Tensor:
        """Item factors [n_items, d] (inner product = the model's score)."""
        self._require_fitted()
        return self.item_factors_

    def fold_in(self, histories: Sequence[np.ndarray]) -> torch.Tensor:
        """User vectors [B, d] from item-id histories (internal ids; repeats count once; empty → 0), solved
        against the fitted item factors as in the class docstring."""
        self._require_fitted()
        n_items, d = self.item_factors_.shape
        items = [np.unique(np.asarray(h, dtype=np.int64)) for h in histories]
        for row, h in enumerate(items):
            if h.size and (int(h[0]) < 0 or int(h[-1]) >= n_items):
                raise ValueError(f"histories[{row}]: item ids must lie in [0, {n_items}), got {int(h[0])} … "
                                 f"{int(h[-1])}: map unknown items out first")
        out = torch.zeros(len(items), d, dtype=torch.float32, device=self.device_)
        order = np.argsort([len(h) for h in items], kind="stable")  # ascending: a block's last row is its widest
        start = 0
        while start < len(order):
            stop = start + 1
            while stop < len(order) and (stop + 1 - start) * max(len(items[order[stop]]), 1) * d <= FOLD_IN_BLOCK:
                stop += 1
            rows = order[start:stop]
            out[torch.as_tensor(rows, device=self.device_)] = self._solve([items[r] for r in rows]).float()
            start = stop
        return out

    def _solve(self, items: list[np.ndarray]) -> torch.Tensor:
        """The fold-in solve for one block of histories (distinct, in-range ids), in float64.

        With H = the history's factors [L, d], c = α − 1 and M = (YᵀY + λI)⁻¹: x = M b when c = 0; when L < d,
        Woodbury's identity x = M b − Zᵀ (I/c + Z Hᵀ)⁻¹ Z b with Z = H M (an L × L solve instead of d × d);
        otherwise the d × d solve."""
        cfg = self.config
        width, d = max((len(h) for h in items), default=0), self.item_factors_.shape[1]
        index = np.zeros((len(items), width), dtype=np.int64)
        mask = np.zeros((len(items), width), dtype=bool)
        for row, h in enumerate(items):
            index[row, : len(h)], mask[row, : len(h)] = h, True
        gathered = self.item_factors_[torch.as_tensor(index, device=self.device_)].double()
        gathered = gathered * torch.as_tensor(mask, device=self.device_)[:, :, None]
        b = cfg.alpha * gathered.sum(dim=1)
        c = cfg.alpha - 1.0
        if c == 0.0:
            return b @ self.gram_inverse()
        if width >= d:
            return torch.linalg.solve(self.gram() + c * gathered.transpose(1, 2) @ gathered, b)
        m = self.gram_inverse()
        z = gathered @ m
        small = torch.eye(width, dtype=z.dtype, device=z.device) / c + z @ gathered.transpose(1, 2)
        return b @ m - (z.transpose(1, 2) @ torch.linalg.solve(small, z @ b.unsqueeze(2))).squeeze(2)

    def gram(self) -> torch.Tensor:
        """YᵀY + λI in float64 (computed once per set of factors)."""
        if self._gram is None:
            y = self.item_factors_.double()
            self._gram = y.T @ y + self.config.regularization * torch.eye(y.shape[1], dtype=y.dtype,
                                                                          device=y.device)
        return self._gram

    def gram_inverse(self) -> torch.Tensor:
        """(YᵀY + λI)⁻¹ in float64 (computed once per set of factors)."""
        if self._gram_inverse is None:
            self._gram_inverse = torch.cholesky_inverse(torch.linalg.cholesky(self.gram()))
        return self._gram_inverse

    def score_histories(self, histories: Sequence[np.ndarray]) -> torch.Tensor:
        """Scores of every item [B, n_items] for users folded in from ``histories``."""
        return self.fold_in(histories) @ self.item_factors_.T

    def score_candidates(self, histories: Sequence[np.ndarray], candidates: np.ndarray) -> torch.Tensor:
        """Scores [B, C] of given candidate ids for users folded in from ``histories``; ``-1`` pads score −inf."""
        cand = np.asarray(candidates, dtype=np.int64)
        if cand.ndim != 2 or cand.shape[0] != len(histories):
            raise ValueError(f"candidates must be [{len(histories)}, C], got {tuple(cand.shape)}")
        n_items = self.item_factors_.shape[0]
        if cand.size and (int(cand.max()) >= n_items or int(cand.min()) < PAD_ITEM):
            raise ValueError(f"candidate item ids must lie in [0, {n_items}) or be {PAD_ITEM} (padding)")
        users = self.fold_in(histories)
        index = torch.as_tensor(cand, device=self.device_)
        scores = torch.einsum("bcd,bd->bc", self.item_factors_[index.clamp_min(0)], users)
        return scores.masked_fill(index == PAD_ITEM, float("-inf"))

    def state_tensors(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """The two factor matrices; the per-iteration history and any budget stop as metadata."""
        return {"user_factors": self.user_factors_, "item_factors": self.item_factors_}, {
            "history": self.history_,
            "budget_stop": None if self.budget_stop_ is None else self.budget_stop_.to_json(),
            "fit_summary": None if self.fit_summary_ is None else self.fit_summary_.to_json()}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """Restore the factors on the configured device."""
        self.set_factors(tensors["user_factors"], tensors["item_factors"])
        self.history_ = list(meta.get("history", []))
        self.budget_stop_ = BudgetStop.from_json(meta.get("budget_stop"))
        self.fit_summary_ = FitSummary.from_json(meta.get("fit_summary"))
