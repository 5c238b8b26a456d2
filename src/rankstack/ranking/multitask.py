"""The multi-task ranker: fit on logged impressions, calibrate each head on validation, predict per objective."""

from __future__ import annotations

import copy
import logging
import time
from typing import Literal

import numpy as np
import polars as pl
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from rankstack.device import resolve_device
from rankstack.errors import ConfigError
from rankstack.ranking.calibration import CalibrationKind, Calibrator, fit_calibrator
from rankstack.ranking.features import EncodedBatch, FeatureConfig, FeatureEncoder
from rankstack.ranking.networks import LinearNet, MultiTaskNet, multitask_loss

LOG = logging.getLogger(__name__)
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


def _base_rates(train: pl.DataFrame, exam: float) -> dict[str, float]:
    """Starting rates per tower: attraction = CTR / σ(initial exam logit), cvr = conversions / clicks."""
    clicks = float(train.get_column("click").sum()) if "click" in train.columns else 0.0
    conversions = float(train.get_column("conversion").sum()) if "conversion" in train.columns else 0.0
    n = max(train.height, 1)
    return {"attract": min(clicks / n / exam, 0.99), "cvr": conversions / max(clicks, 1.0),
            "conversion": conversions / n}


class MultiTaskRanker:
    """Click / conversion / revenue predictions for (user, item, context) rows of an impression table."""

    name = "multitask"

    def __init__(self, config: MultiTaskConfig | None = None) -> None:
        self.config = config or MultiTaskConfig()
        self.encoder_: FeatureEncoder | None = None
        self.net_: nn.Module | None = None
        self.calibrators_: dict[str, Calibrator] = {}
        self.history_: list[dict[str, float]] = []
        self.device = resolve_device(self.config.device)

    def _check_labels(self, table: pl.DataFrame) -> None:
        cfg = self.config
        need = ["click"] if "click" in cfg.objectives else []
        need += ["conversion"] if "conversion" in cfg.objectives else []
        need += ["revenue"] if "revenue" in cfg.objectives else []
        for label in need:
            if label not in table.columns or table.get_column(label).sum() == 0:
                raise ConfigError(f"objective {label!r} has no positive labels in the training impressions; "
                                  f"drop it (e.g. --set objectives=[click])")
        if "revenue" in cfg.objectives and cfg.revenue_mode == "expected_payout" and cfg.payout_column not in \
                table.columns:
            raise ConfigError(f"revenue_mode expected_payout needs the item column {cfg.payout_column!r}; "
                              "use revenue_mode=regression")

    def _build(self, enc: FeatureEncoder, value_scale: float) -> MultiTaskNet | LinearNet:
        cfg = self.config
        if cfg.architecture == "linear":
            return LinearNet(enc.cardinalities, len(enc.numeric_), enc.n_bias, cfg.tasks)
        return MultiTaskNet(
            enc.cardinalities, len(enc.numeric_), enc.n_bias, cfg.tasks, embedding_dim=cfg.embedding_dim,
            cross_layers=cfg.cross_layers, cross_rank=cfg.cross_rank, mlp_dims=cfg.mlp_dims,
            n_experts=cfg.n_experts, expert_dims=cfg.expert_dims, tower_dims=cfg.tower_dims, dropout=cfg.dropout,
            position_bias=cfg.position_bias, value_scale=value_scale,
        )

    def fit(self, train: pl.DataFrame, validation: pl.DataFrame) -> MultiTaskRanker:
        """Train on ``train`` impressions with early stopping on ``validation`` loss, then calibrate on validation."""
        cfg = self.config
        self._check_labels(train)
        torch.manual_seed(cfg.seed)
        enc = FeatureEncoder(cfg.features, cfg.payout_column).fit(train)
        tr, va = enc.transform(train).to(self.device), enc.transform(validation).to(self.device)
        rev = tr.labels.get("revenue")
        conv = tr.labels.get("conversion")
        value_scale = float(rev[conv > 0].mean()) if rev is not None and conv is not None and conv.sum() > 0 else 1.0
        self.encoder_ = enc
        net = self._build(enc, value_scale)
        net.initialise_bias(_base_rates(train, exam=0.88 if cfg.position_bias else 1.0))
        self.net_ = net.to(self.device)
        self._train(tr, va, value_scale)
        self.calibrate(validation)
        return self

    def _loss(self, batch: EncodedBatch, value_scale: float) -> torch.Tensor:
        assert self.net_ is not None
        return multitask_loss(self.net_(batch), batch, cvr_aux_weight=self.config.cvr_aux_weight,
                              value_scale=value_scale)

    def _train(self, tr: EncodedBatch, va: EncodedBatch, value_scale: float) -> None:
        cfg, net = self.config, self.net_
        assert net is not None
        opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        gen = torch.Generator().manual_seed(cfg.seed)
        best, best_state, stale = np.inf, copy.deepcopy(net.state_dict()), 0
        self.history_ = []
        for epoch in range(cfg.epochs):
            t0 = time.perf_counter()
            net.train()
            order = torch.randperm(len(tr), generator=gen).to(self.device)
            total = 0.0
            for start in range(0, len(tr), cfg.batch_size):
                batch = tr.take(order[start : start + cfg.batch_size])
                loss = self._loss(batch, value_scale)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(batch)
            val = self._eval_loss(va, value_scale)
            self.history_.append({"epoch": epoch + 1, "train_loss": total / len(tr), "validation_loss": val,
                                  "seconds": round(time.perf_counter() - t0, 2)})
            LOG.info("epoch %s", self.history_[-1])
            if val < best - 1e-6:
                best, best_state, stale = val, copy.deepcopy(net.state_dict()), 0
                continue
            stale += 1
            if stale > cfg.patience:
                break
            net.load_state_dict(best_state)  # back to the best epoch, continue with a smaller step
            for group in opt.param_groups:
                group["lr"] *= cfg.lr_decay
        net.load_state_dict(best_state)

    @torch.no_grad()
    def _eval_loss(self, va: EncodedBatch, value_scale: float, chunk: int = 65_536) -> float:
        assert self.net_ is not None
        self.net_.eval()
        total = sum(float(self._loss(va.take(slice(s, s + chunk)), value_scale)) * min(chunk, len(va) - s)
                    for s in range(0, len(va), chunk))
        return total / max(len(va), 1)

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
