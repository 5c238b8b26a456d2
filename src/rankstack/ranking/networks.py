"""The ranking networks and their losses: MMoE over a DCN-v2 + MLP bottom (ESMM conversion), and logistic regression.

Both networks return, per row, ``click`` = log pCTR (position bias included), ``conversion`` = log P(conversion
| impression), ``cvr_logit`` (ESMM only; pCVR = σ(cvr_logit)) and ``value`` (revenue regression only).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from rankstack.ranking.features import EncodedBatch
from rankstack.ranking.layers import CrossNetwork, FeatureEmbedding, MMoE, mlp


def _logit(rate: float) -> float:
    """log(r / (1 − r)) with r kept inside (1e-6, 1 − 1e-6)."""
    r = min(max(rate, 1e-6), 1 - 1e-6)
    return math.log(r / (1 - r))


def log1mexp(log_p: torch.Tensor) -> torch.Tensor:
    """log(1 − e^x) for x < 0, stable on both sides of −log 2."""
    x = torch.clamp(log_p, max=-1e-7)
    return torch.where(x > -0.6931, torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


def bce_log_prob(log_p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy from log-probabilities: −mean[y·log p + (1 − y)·log(1 − p)]."""
    return -(y * log_p + (1 - y) * log1mexp(log_p)).mean()


class MultiTaskNet(nn.Module):
    """Embeddings → [cross network ‖ MLP] → MMoE (one gate and tower per task) → heads.

    pCTR = σ(attract)·σ(exam[position, context]) (position-bias tower, PAL-style);
    pCTCVR = pCTR·σ(cvr) when both click and conversion are objectives (ESMM), else σ(conversion).
    """

    value_scale: torch.Tensor

    def __init__(self, cardinalities: Sequence[int], n_numeric: int, n_bias: int, tasks: Sequence[str], *,
                 embedding_dim: int, cross_layers: int, cross_rank: int | None, mlp_dims: Sequence[int],
                 n_experts: int, expert_dims: Sequence[int], tower_dims: Sequence[int], dropout: float,
                 position_bias: bool, value_scale: float = 1.0) -> None:
        super().__init__()
        self.tasks = list(tasks)
        self.register_buffer("value_scale", torch.tensor(float(value_scale)))
        self.embed = FeatureEmbedding(cardinalities, n_numeric, embedding_dim)
        d0 = self.embed.out_dim
        self.cross = CrossNetwork(d0, cross_layers, cross_rank)
        self.deep = mlp(d0, mlp_dims, dropout)
        bottom = d0 + (mlp_dims[-1] if mlp_dims else d0)
        self.mmoe = MMoE(bottom, n_experts, expert_dims, len(self.tasks), dropout)
        self.towers = nn.ModuleList(
            nn.Sequential(mlp(self.mmoe.out_dim, tower_dims, dropout),
                          nn.Linear(tower_dims[-1] if tower_dims else self.mmoe.out_dim, 1))
            for _ in self.tasks
        )
        self.exam = nn.Embedding(n_bias, 1) if position_bias and "attract" in self.tasks else None
        if self.exam is not None:
            nn.init.constant_(self.exam.weight, 2.0)

    @torch.no_grad()
    def initialise_bias(self, rates: dict[str, float]) -> None:
        """Start each tower's output at logit(base rate) so the first steps do not just learn the mean."""
        for task, tower in zip(self.tasks, self.towers, strict=True):
            rate = rates.get(task)
            if rate is not None:
                assert isinstance(tower, nn.Sequential)
                out = tower[-1]
                assert isinstance(out, nn.Linear)
                out.bias.fill_(_logit(rate))

    def forward(self, batch: EncodedBatch) -> dict[str, torch.Tensor]:
        """Head outputs for ``batch`` (see the module docstring)."""
        x0 = self.embed(batch.cat, batch.num)
        h = torch.cat([self.cross(x0), self.deep(x0)], dim=1)
        raw = {task: tower(rep).squeeze(1) for task, tower, rep in zip(self.tasks, self.towers, self.mmoe(h),
                                                                       strict=True)}
        out: dict[str, torch.Tensor] = {}
        if "attract" in raw:
            log_ctr = F.logsigmoid(raw["attract"])
            if self.exam is not None:
                log_ctr = log_ctr + F.logsigmoid(self.exam(batch.bias).squeeze(1))
            out["click"] = log_ctr
            if "cvr" in raw:
                out["cvr_logit"] = raw["cvr"]
                out["conversion"] = log_ctr + F.logsigmoid(raw["cvr"])
        if "conversion" in raw:
            out["conversion"] = F.logsigmoid(raw["conversion"])
        if "value" in raw:
            out["value"] = F.softplus(raw["value"]) * self.value_scale
        return out


class LinearNet(nn.Module):
    """Logistic regression per objective on one-hot categories, numbers and position × context:
    logit_t = b_t + Σ_f w_{t,f}[c_f] + v_tᵀ·num + u_t[position, context].
    """

    def __init__(self, cardinalities: Sequence[int], n_numeric: int, n_bias: int, tasks: Sequence[str]) -> None:
        super().__init__()
        self.tasks = ["conversion" if t == "cvr" else t for t in tasks if t in ("attract", "cvr", "conversion")]
        k = len(self.tasks)
        weights = [nn.Embedding(n, k) for n in cardinalities]
        for table in weights:
            nn.init.zeros_(table.weight)
        self.weights = nn.ModuleList(weights)
        self.numeric = nn.Linear(n_numeric, k) if n_numeric else None
        self.position = nn.Embedding(n_bias, k)
        nn.init.zeros_(self.position.weight)
        self.bias = nn.Parameter(torch.full((k,), -2.0))

    @torch.no_grad()
    def initialise_bias(self, rates: dict[str, float]) -> None:
        """Start each objective's intercept at logit(base rate)."""
        for j, task in enumerate(self.tasks):
            if task in rates:
                self.bias[j] = _logit(rates[task])

    def forward(self, batch: EncodedBatch) -> dict[str, torch.Tensor]:
        """``click`` and/or ``conversion`` log-probabilities (no ESMM: each objective is its own model)."""
        logits = self.bias + self.position(batch.bias)
        for j, table in enumerate(self.weights):
            logits = logits + table(batch.cat[:, j])
        if self.numeric is not None:
            logits = logits + self.numeric(batch.num)
        names = {"attract": "click", "conversion": "conversion"}
        return {names[t]: F.logsigmoid(logits[:, j]) for j, t in enumerate(self.tasks)}


def multitask_loss(out: dict[str, torch.Tensor], batch: EncodedBatch, *, cvr_aux_weight: float = 0.0,
                   value_scale: float = 1.0) -> torch.Tensor:
    """Σ over heads: BCE(pCTR, click) + BCE(pCTCVR, conversion) over all impressions
    [+ w·BCE(pCVR, conversion | clicked)] [+ mean((v̂ − revenue)² / scale²) over conversions].
    """
    y = batch.labels
    loss = torch.zeros((), device=batch.cat.device)
    if "click" in out:
        loss = loss + bce_log_prob(out["click"], y["click"])
    if "conversion" in out:
        loss = loss + bce_log_prob(out["conversion"], y["conversion"])
    if cvr_aux_weight > 0 and "cvr_logit" in out:
        clicked = y["click"] > 0
        if clicked.any():
            loss = loss + cvr_aux_weight * F.binary_cross_entropy_with_logits(
                out["cvr_logit"][clicked], y["conversion"][clicked])
    if "value" in out:
        converted = y["conversion"] > 0
        if converted.any():
            err = (out["value"][converted] - y["revenue"][converted]) / value_scale
            loss = loss + (err**2).mean()
    return loss
