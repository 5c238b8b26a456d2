"""LightGCN (He et al., SIGIR 2020): linear propagation over the normalised user–item graph, BPR loss
(the paper's set-up) or, optionally, a sampled softmax with logQ correction."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field

from rankstack.data.dataset import Dataset
from rankstack.device import resolve_device
from rankstack.evaluation.fit_summary import FitSummary
from rankstack.retrieval.source import BudgetStop, CandidateSource, SourceConfig


class LightGCNConfig(SourceConfig):
    """Paper architecture: dim 64, 3 layers, L2 1e-4; ``validation_ratio`` 0 disables early stopping.

    ``preset``: ``cpu`` (the defaults, sized so a ≤ 100k-event log trains in minutes on 2 cores: batch 8192,
    lr 5e-3, at most 300 epochs, patience 4 validations) or ``gpu`` (the paper's schedule: batch 2048, lr 1e-3,
    at most 1,000 epochs, patience 10); settings given explicitly win over the preset.

    Without ``refit``, the layer-0 embeddings of the best validation epoch are propagated over the whole
    training graph (validation edges included) for the final embeddings; ``time_budget_s`` bounds the whole fit.
    ``loss`` "softmax" trains a sampled softmax at ``temperature`` τ over the batch's positives plus
    ``negatives`` uniform items, on cosines when ``cosine`` (then the final embeddings are L2-normalised).
    """

    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "gpu": {"batch_size": 2048, "lr": 1e-3, "epochs": 1000, "patience": 10}}

    preset: Literal["cpu", "gpu"] = "cpu"
    embedding_dim: int = Field(default=64, ge=1)
    layers: int = Field(default=3, ge=0)
    lr: float = Field(default=5e-3, gt=0)
    epochs: int = Field(default=300, ge=1)
    batch_size: int = Field(default=8192, ge=1)
    l2: float = Field(default=1e-4, ge=0)
    validation_ratio: float = Field(default=0.1, ge=0, lt=1)
    eval_every: int = Field(default=5, ge=1)
    patience: int = Field(default=4, ge=1)
    eval_k: int = Field(default=20, ge=1)
    refit: bool = False
    time_budget_s: float | None = Field(default=None, gt=0)
    loss: Literal["bpr", "softmax"] = "bpr"
    temperature: float = Field(default=0.1, gt=0)
    negatives: int = Field(default=1024, ge=0)
    cosine: bool = True
    seed: int = 0
    device: str = "auto"


class LightGCN(CandidateSource):
    """score(u, i) = ⟨e_u, e_i⟩ with [E_U; E_I] = 1/(L+1) Σ_l Â^l E⁰ (``lightgcn_train.propagate``); with the
    cosine softmax, e_u and e_i are L2-normalised so the score is the cosine the model was trained on. The
    losses: ``lightgcn_train.LightGCNLoss``.
    """

    name = "lightgcn"
    config_class = LightGCNConfig
    closed_form = False
    config: LightGCNConfig
    device_: torch.device
    user_emb_: torch.Tensor
    item_emb_: torch.Tensor
    history_: list[dict[str, float]]
    best_epoch_: int
    budget_stop_: BudgetStop | None

    def fit(self, dataset: Dataset) -> LightGCN:
        """Train with Adam; early-stop on validation recall@eval_k (optionally refit on all of train); the loop
        lives in :mod:`rankstack.retrieval.lightgcn_train`."""
        from rankstack.retrieval.lightgcn_train import train_lightgcn

        train_lightgcn(self, dataset)
        return self

    def score(self, user_ids: np.ndarray) -> torch.Tensor:
        """⟨e_u, e_i⟩ for every item (cosine when trained with the cosine softmax)."""
        self._require_fitted()
        users = torch.as_tensor(np.asarray(user_ids, dtype=np.int64), device=self.user_emb_.device)
        return self.user_emb_[users] @ self.item_emb_.T

    def item_vectors(self) -> torch.Tensor:
        """Final item embeddings (index these with a VectorIndex: inner product, = cosine if normalised)."""
        return self.item_emb_

    def user_vectors(self, user_ids: np.ndarray) -> torch.Tensor:
        """Final user embeddings (queries)."""
        return self.user_emb_[torch.as_tensor(np.asarray(user_ids, dtype=np.int64), device=self.user_emb_.device)]

    def state_tensors(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Final embeddings and the training history."""
        return {"user_emb": self.user_emb_, "item_emb": self.item_emb_}, {
            "history": self.history_, "best_epoch": self.best_epoch_,
            "budget_stop": None if self.budget_stop_ is None else self.budget_stop_.to_json(),
            "fit_summary": None if self.fit_summary_ is None else self.fit_summary_.to_json()}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """Restore the embeddings on the configured device."""
        self.device_ = resolve_device(self.config.device)
        self.user_emb_ = tensors["user_emb"].to(self.device_)
        self.item_emb_ = tensors["item_emb"].to(self.device_)
        self.history_ = list(meta.get("history", []))
        self.best_epoch_ = int(meta.get("best_epoch", 0))
        self.budget_stop_ = BudgetStop.from_json(meta.get("budget_stop"))
        self.fit_summary_ = FitSummary.from_json(meta.get("fit_summary"))
