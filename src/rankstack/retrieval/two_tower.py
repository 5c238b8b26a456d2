"""Two-tower retrieval: in-batch sampled softmax with logQ correction, cold-start items from features."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field, model_validator

from rankstack.data.dataset import Dataset
from rankstack.device import resolve_device
from rankstack.evaluation.fit_summary import FitSummary
from rankstack.retrieval.feature_tensors import FeatureEncoder
from rankstack.retrieval.source import BudgetStop, CandidateSource, SourceConfig
from rankstack.retrieval.two_tower_net import TwoTowerNet


class TwoTowerConfig(SourceConfig):
    """``temperature`` τ scales cosines; ``id_dropout`` trains the item tower to work from features alone.
    ``uniform_negatives`` M shared uniform items join the in-batch ones, all corrected by the mixture's logQ.
    User tower: ``use_user_id`` (false: history and features only), ``user_id_dropout`` (zero a user's id
    embedding for that share of training examples), ``user_l2`` (λ·mean‖e_u‖² over the batch's user ids).
    ``history_order``: ``time`` (each training event sees the items before it: next-item data), ``set`` (a fresh
    random subset of the user's other items each epoch: logs without time order), ``auto`` (time when the events
    carry timestamps, else set).
    ``preset``: ``cpu`` (the defaults: 10 epochs, so a ≤ 100k-event log trains in minutes on 2 cores) or ``gpu``
    (20 epochs, bfloat16 autocast); settings given explicitly win. ``time_budget_s`` bounds the whole fit."""

    presets: ClassVar[dict[str, dict[str, Any]]] = {"gpu": {"epochs": 20, "amp": True}}

    preset: Literal["cpu", "gpu"] = "cpu"
    embedding_dim: int = Field(default=64, ge=1)
    hidden_dim: int = Field(default=256, ge=1)
    history_len: int = Field(default=50, ge=1)
    temperature: float = Field(default=0.05, gt=0)
    lr: float = Field(default=1e-3, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    epochs: int = Field(default=10, ge=1)
    batch_size: int = Field(default=1024, ge=2)
    uniform_negatives: int = Field(default=256, ge=0)
    logq_alpha: float = Field(default=0.01, gt=0, le=1)
    id_dropout: float = Field(default=0.2, ge=0, le=1)
    use_user_id: bool = True
    user_id_dropout: float = Field(default=0.0, ge=0, le=1)
    user_l2: float = Field(default=0.0, ge=0)
    history_order: Literal["auto", "time", "set"] = "auto"
    item_features: list[str] | None = None
    user_features: list[str] | None = None
    validation_ratio: float = Field(default=0.0, ge=0, lt=1)
    eval_every: int = Field(default=1, ge=1)
    patience: int = Field(default=3, ge=1)
    eval_k: int = Field(default=20, ge=1)
    time_budget_s: float | None = Field(default=None, gt=0)
    amp: bool = False
    seed: int = 0
    device: str = "auto"

    @model_validator(mode="after")
    def _user_id_settings_need_user_ids(self) -> TwoTowerConfig:
        if not self.use_user_id and (self.user_l2 or self.user_id_dropout):
            raise ValueError("user_l2 and user_id_dropout act on the user-id embedding: they need use_user_id=true")
        return self


class TwoTower(CandidateSource):
    """score(u, i) = ⟨u, v_i⟩ (cosine). Loss: softmax over the batch's items (plus M shared uniform ones),
    logit_uj = ⟨u, v_j⟩/τ − log(q_j + M/N), q_j the streaming estimate of j's expected count per batch (logQ
    correction: Yi et al., RecSys 2019; the M/N term for mixed negatives: Yang et al., WWW 2020), plus
    ``user_l2``·mean‖e_u‖²."""

    name = "two-tower"
    config_class = TwoTowerConfig
    closed_form = False
    config: TwoTowerConfig
    device_: torch.device
    item_encoder_: FeatureEncoder
    user_encoder_: FeatureEncoder
    item_feats_: dict[str, torch.Tensor]
    user_feats_: dict[str, torch.Tensor]
    net_: TwoTowerNet
    histories_: torch.Tensor
    item_counts_: torch.Tensor
    user_vectors_: torch.Tensor
    item_vectors_: torch.Tensor
    history_: list[dict[str, float]]
    history_order_: Literal["time", "set"]

    def fit(self, dataset: Dataset) -> TwoTower:
        """Encode features, train the towers, then embed every user and item (cold items from features); the
        loop lives in :mod:`rankstack.retrieval.two_tower_train`."""
        from rankstack.retrieval.two_tower_train import train_two_tower

        train_two_tower(self, dataset)
        return self

    def score(self, user_ids: np.ndarray) -> torch.Tensor:
        """⟨u, v_i⟩ for every item."""
        self._require_fitted()
        users = torch.as_tensor(np.asarray(user_ids, dtype=np.int64), device=self.user_vectors_.device)
        return self.user_vectors_[users] @ self.item_vectors_.T

    def item_vectors(self) -> torch.Tensor:
        """Item vectors (unit norm; index them with a VectorIndex: inner product = cosine)."""
        return self.item_vectors_

    def user_vectors(self, user_ids: np.ndarray) -> torch.Tensor:
        """User vectors [users, d] (the queries of a VectorIndex over ``item_vectors``)."""
        self._require_fitted()
        users = torch.as_tensor(np.asarray(user_ids, dtype=np.int64), device=self.user_vectors_.device)
        return self.user_vectors_[users]

    def state_tensors(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Network weights, features, histories and the final vectors."""
        tensors = {f"net.{k}": v for k, v in self.net_.state_dict().items()}
        tensors.update({f"item_feat.{k}": v for k, v in self.item_feats_.items()})
        tensors.update({f"user_feat.{k}": v for k, v in self.user_feats_.items()})
        tensors.update(histories=self.histories_, item_counts=self.item_counts_, user_vectors=self.user_vectors_,
                       item_vectors=self.item_vectors_)
        meta = {"item_encoder": self.item_encoder_.describe(), "user_encoder": self.user_encoder_.describe(),
                "history": self.history_, "history_order": self.history_order_,
                "budget_stop": None if self.budget_stop_ is None else self.budget_stop_.to_json(),
                "fit_summary": None if self.fit_summary_ is None else self.fit_summary_.to_json()}
        return tensors, meta

    def load_state_tensors(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """Rebuild the network from the saved encoders and load every tensor on the configured device."""
        cfg = self.config
        self.device_ = dev = resolve_device(cfg.device)
        self.item_encoder_ = FeatureEncoder.from_description(meta["item_encoder"])
        self.user_encoder_ = FeatureEncoder.from_description(meta["user_encoder"])
        n_users, n_items = tensors["user_vectors"].shape[0], tensors["item_vectors"].shape[0]
        self.net_ = TwoTowerNet(n_users, n_items, cfg.embedding_dim, cfg.hidden_dim, self.item_encoder_,
                                self.user_encoder_, cfg.use_user_id).to(dev)
        self.net_.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
        self.item_feats_ = {k[10:]: v.to(dev) for k, v in tensors.items() if k.startswith("item_feat.")}
        self.user_feats_ = {k[10:]: v.to(dev) for k, v in tensors.items() if k.startswith("user_feat.")}
        self.histories_, self.item_counts_ = tensors["histories"].to(dev), tensors["item_counts"].to(dev)
        self.user_vectors_, self.item_vectors_ = tensors["user_vectors"].to(dev), tensors["item_vectors"].to(dev)
        self.history_ = list(meta.get("history", []))
        self.history_order_ = meta.get("history_order", "time")
        self.budget_stop_ = BudgetStop.from_json(meta.get("budget_stop"))
        self.fit_summary_ = FitSummary.from_json(meta.get("fit_summary"))
