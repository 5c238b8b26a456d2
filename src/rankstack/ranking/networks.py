"""The ranking networks: MMoE over a DCN-v2 + MLP bottom (ESMM conversion), and logistic regression (their losses:
``rankstack.ranking.networks_train``).

Both networks return, per row, ``click`` = log pCTR (position bias included), ``conversion`` = log P(conversion
| impression), ``cvr_logit`` (ESMM only; pCVR = σ(cvr_logit)) and ``value`` (revenue regression only).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from rankstack.ranking.impression_features import EncodedBatch
from rankstack.ranking.layers import CrossNetwork, FeatureEmbedding, MMoE, mlp


def _logit(rate: float) -> float:
    """log(r / (1 − r)) with r kept inside (1e-6, 1 − 1e-6)."""
    r = min(max(rate, 1e-6), 1 - 1e-6)
    return math.log(r / (1 - r))


@dataclass(frozen=True)
class NetInputs:
    """What the feature encoder feeds a network: each categorical field's cardinality, the number of numeric
    columns and the number of (position, context) bias rows."""

    cardinalities: tuple[int, ...]
    n_numeric: int
    n_bias: int


class NetSettings(Protocol):
    """The architecture settings :class:`MultiTaskNet` reads (a ``MultiTaskConfig`` has them)."""

    embedding_dim: int
    cross_layers: int
    cross_rank: int | None
    mlp_dims: tuple[int, ...]
    n_experts: int
    expert_dims: tuple[int, ...]
    tower_dims: tuple[int, ...]
    dropout: float
    position_bias: bool

    @property
    def tasks(self) -> list[str]:
        """The towers, in order."""
        ...


class MultiTaskNet(nn.Module):
    """Embeddings → [cross network ‖ MLP] → MMoE (one gate and tower per task) → heads.

    pCTR = σ(attract)·σ(exam[position, context]) (position-bias tower, PAL-style);
    pCTCVR = pCTR·σ(cvr) when both click and conversion are objectives (ESMM), else σ(conversion).
    """

    value_scale: torch.Tensor

    def __init__(self, inputs: NetInputs, cfg: NetSettings, value_scale: float = 1.0) -> None:
        super().__init__()
        self.tasks = list(cfg.tasks)
        self.register_buffer("value_scale", torch.tensor(float(value_scale)))
        self.embed = FeatureEmbedding(inputs.cardinalities, inputs.n_numeric, cfg.embedding_dim)
        d0 = self.embed.out_dim
        self.cross = CrossNetwork(d0, cfg.cross_layers, cfg.cross_rank)
        self.deep = mlp(d0, cfg.mlp_dims, cfg.dropout)
        bottom = d0 + (cfg.mlp_dims[-1] if cfg.mlp_dims else d0)
        self.mmoe = MMoE(bottom, cfg.n_experts, cfg.expert_dims, len(self.tasks), cfg.dropout)
        self.towers = nn.ModuleList(
            nn.Sequential(mlp(self.mmoe.out_dim, cfg.tower_dims, cfg.dropout),
                          nn.Linear(cfg.tower_dims[-1] if cfg.tower_dims else self.mmoe.out_dim, 1))
            for _ in self.tasks
        )
        self.exam = nn.Embedding(inputs.n_bias, 1) if cfg.position_bias and "attract" in self.tasks else None
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

    def __init__(self, inputs: NetInputs, tasks: Sequence[str]) -> None:
        super().__init__()
        self.tasks = ["conversion" if t == "cvr" else t for t in tasks if t in ("attract", "cvr", "conversion")]
        k = len(self.tasks)
        weights = [nn.Embedding(n, k) for n in inputs.cardinalities]
        for table in weights:
            nn.init.zeros_(table.weight)
        self.weights = nn.ModuleList(weights)
        self.numeric = nn.Linear(inputs.n_numeric, k) if inputs.n_numeric else None
        self.position = nn.Embedding(inputs.n_bias, k)
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
