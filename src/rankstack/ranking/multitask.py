"""The multi-task ranker: fit on logged impressions, calibrate each head on validation, predict per objective."""

from __future__ import annotations

from typing import Literal

import numpy as np
import polars as pl
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from rankstack.device import resolve_device
from rankstack.evaluation.fit_summary import FitSummary
from rankstack.ranking.calibration import CalibrationKind, Calibrator, fit_calibrator
from rankstack.ranking.impression_features import EncodedBatch, FeatureConfig, FeatureEncoder
from rankstack.ranking.networks import LinearNet, MultiTaskNet, NetInputs

Objective = Literal["click", "conversion", "revenue"]
HEADS = ("click", "conversion", "cvr")


class MultiTaskConfig(BaseModel):
    """Objectives, architecture, training and calibration of a :class:`MultiTaskRanker` (unknown keys rejected)."""

    model_config = ConfigDict(extra="forbid")

    objectives: tuple[Objective, ...] = ("click", "conversion", "revenue")
    revenue_mode: Literal["expected_payout", "regression"] = "expected_payout"
    payout_column: str = "payout"
    architecture: Literal["mmoe", "linear"] = "mmoe"
    embedding_dim: int = Field(default=4, ge=1)
    cross_layers: int = Field(default=2, ge=0)
    cross_rank: int | None = Field(default=32, ge=1)
    mlp_dims: tuple[int, ...] = (64,)
    n_experts: int = Field(default=2, ge=1)
    expert_dims: tuple[int, ...] = (32,)
    tower_dims: tuple[int, ...] = (16,)
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    position_bias: bool = True
    cvr_aux_weight: float = Field(default=0.0, ge=0.0)
    epochs: int = Field(default=10, ge=1)
    batch_size: int = Field(default=2048, ge=1)
    lr: float = Field(default=3e-3, gt=0.0)
    weight_decay: float = Field(default=0.0, ge=0.0)
    patience: int = Field(default=2, ge=0, description="epochs without validation gain before stopping")
    lr_decay: float = Field(default=0.5, gt=0.0, le=1.0, description="lr factor after an epoch without gain")
    time_budget_s: float | None = Field(default=None, gt=0, description="wall-clock budget of the whole fit")
    seed: int = 0
    device: str | None = None
    calibration: CalibrationKind = "auto"
    features: FeatureConfig = FeatureConfig()

    @model_validator(mode="after")
    def _check(self) -> MultiTaskConfig:
        if not self.objectives or len(set(self.objectives)) != len(self.objectives):
            raise ValueError("objectives must be a non-empty list without repeats")
        if "revenue" in self.objectives and "conversion" not in self.objectives:
            raise ValueError("the revenue objective needs the conversion objective (revenue = pCTCVR × value)")
        return self

    @property
    def tasks(self) -> list[str]:
        """Network towers: attract (click), cvr (ESMM) or conversion (direct), value (revenue regression)."""
        tasks = ["attract"] if "click" in self.objectives else []
        if "conversion" in self.objectives:
            tasks.append("cvr" if "click" in self.objectives else "conversion")
        if "revenue" in self.objectives and self.revenue_mode == "regression":
            tasks.append("value")
        return tasks


class MultiTaskRanker:
    """Click / conversion / revenue predictions for (user, item, context) rows of an impression table."""

    name = "multitask"

    def __init__(self, config: MultiTaskConfig | None = None) -> None:
        self.config = config or MultiTaskConfig()
        self.encoder_: FeatureEncoder | None = None
        self.net_: nn.Module | None = None
        self.calibrators_: dict[str, Calibrator] = {}
        self.history_: list[dict[str, float]] = []
        self.fit_summary_: FitSummary | None = None
        self.device = resolve_device(self.config.device)

    def new_net(self, enc: FeatureEncoder, value_scale: float) -> MultiTaskNet | LinearNet:
        """An untrained network of the configured architecture over ``enc``'s features."""
        inputs = NetInputs(tuple(enc.cardinalities), len(enc.numeric_), enc.n_bias)
        if self.config.architecture == "linear":
            return LinearNet(inputs, self.config.tasks)
        return MultiTaskNet(inputs, self.config, value_scale)

    def fit(self, train: pl.DataFrame, validation: pl.DataFrame) -> MultiTaskRanker:
        """Train on ``train`` impressions with early stopping on ``validation`` loss, then calibrate on validation
        (the loop lives in :mod:`rankstack.ranking.networks_train`)."""
        from rankstack.ranking.networks_train import train_network

        train_network(self, train, validation)
        self.calibrate(validation)
        return self

    @torch.no_grad()
    def _raw(self, batch: EncodedBatch, chunk: int = 65_536) -> dict[str, np.ndarray]:
        """Uncalibrated head outputs: click, conversion, cvr probabilities and (regression) value."""
        if self.net_ is None:
            raise RuntimeError("MultiTaskRanker is not fitted: call fit(train, validation) first")
        self.net_.eval()
        parts: dict[str, list[np.ndarray]] = {}
        for s in range(0, len(batch), chunk):
            out = self.net_(batch.take(slice(s, s + chunk)).to(self.device))
            for key, value in out.items():
                value = torch.sigmoid(value) if key == "cvr_logit" else value
                value = value if key in ("value", "cvr_logit") else torch.exp(value)
                parts.setdefault("cvr" if key == "cvr_logit" else key, []).append(value.double().cpu().numpy())
        raw = {k: np.concatenate(v) for k, v in parts.items()}
        if "cvr" not in raw and "click" in raw and "conversion" in raw:
            raw["cvr"] = np.clip(raw["conversion"] / np.maximum(raw["click"], 1e-12), 0.0, 1.0)
        return raw

    def calibrate(self, validation: pl.DataFrame) -> MultiTaskRanker:
        """Fit one calibrator per head on ``validation`` (cvr on its clicked rows only)."""
        assert self.encoder_ is not None
        batch = self.encoder_.transform(validation)
        raw = self._raw(batch)
        y = {k: v.numpy() for k, v in batch.labels.items()}
        self.calibrators_ = {}
        for head in HEADS:
            if head not in raw:
                continue
            label = "click" if head == "click" else "conversion"
            rows = y["click"] > 0 if head == "cvr" else np.ones(len(batch), dtype=bool)
            labels = y[label][rows]
            if labels.size and 0 < labels.sum() < labels.size:
                self.calibrators_[head] = fit_calibrator(self.config.calibration, raw[head][rows], labels,
                                                         seed=self.config.seed)
        return self

    def predict(self, table: pl.DataFrame, *, position: int | None = None, calibrated: bool = True
                ) -> dict[str, np.ndarray]:
        """Per-row ``click`` (pCTR), ``conversion`` (pCTCVR), ``cvr`` (pCVR | click), ``revenue`` (expected), and
        ``payout``; at the logged slot, or at ``position`` for every row (ranking: slot 0).
        """
        if self.encoder_ is None:
            raise RuntimeError("MultiTaskRanker is not fitted: call fit(train, validation) first")
        batch = self.encoder_.transform(table)
        if position is not None:
            batch = batch.at_position(min(position, self.encoder_.max_position_), self.encoder_.n_context)
        out = self._raw(batch)
        if calibrated:
            out = {k: self.calibrators_[k].transform(v) if k in self.calibrators_ else v for k, v in out.items()}
        out["payout"] = batch.payout.double().numpy()
        if "revenue" in self.config.objectives:
            value = out.pop("value") if self.config.revenue_mode == "regression" else out["payout"]
            out["revenue"] = out["conversion"] * value
        return out

    def score(self, table: pl.DataFrame) -> dict[str, np.ndarray]:
        """Calibrated predictions for ranking candidates: every row as if shown in the first slot."""
        return self.predict(table, position=0)
