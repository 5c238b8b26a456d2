"""The neural candidate ranker (``ranker.kind: neural``): the multi-task network's architecture in ranking mode.

Same rows as LambdaRank (:mod:`rankstack.ranking.candidate_features`, any number of columns), one ``relevance``
head. ``score(batch)`` → ``{"relevance": [B, C]}`` (NaN on pads) = the network's output, plus the prior
``-log2(1 + rank)`` of a ``base`` source when there is one. Inputs, inside the network (:class:`InputScaler`):

    x → sign(x)·log(1 + |x|)          (``log_inputs``: tames counts, ranks and unbounded scores)
      → (x − mean) / std              (mean, std: the training rows', NaN-aware; std 1 for a constant column)
      → NaN / ±inf → 0 (the mean), and one 0/1 "missing" column per feature that was missing in training

then FeatureEmbedding (a vector per input) → [DCN-v2 cross network ‖ MLP] → mixture of experts with one gate →
tower → one score. Fitted by ``rankstack.ranking.neural_ranker_train``; saved without pickle as a folder::

    weights.safetensors   the network's state dict (input scaler included)
    ranker.json           format, network config, feature names, sources, the weights' SHA-256, training report
    stats.safetensors     the item statistics the features read (``ItemStats``)
    sequential/           the sequential model whose score is a feature (when there is one and it is not a source)

Loading checks the weights against their recorded SHA-256 before safetensors parses them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors
from torch import nn

from rankstack.errors import ArtifactError
from rankstack.io import atomic_write, write_text_atomic
from rankstack.ranking.candidate_features import ItemStats
from rankstack.ranking.lambdarank import (
    RELEVANCE,
    STATS_FILE,
    CandidateFeatureRanker,
    feature_settings,
    prior_scores,
)
from rankstack.ranking.layers import CrossNetwork, FeatureEmbedding, MMoE, mlp
from rankstack.ranking.ranker import RankBatch
from rankstack.retrieval.source import CandidateSource

FORMAT = 1
WEIGHTS_FILE, META_FILE = "weights.safetensors", "ranker.json"


class NeuralRankerConfig(BaseModel):
    """Architecture and training of the neural ranker (unknown keys rejected); the multi-task network's blocks."""

    model_config = ConfigDict(extra="forbid")

    embedding_dim: int = Field(default=4, ge=1, description="vector per input column")
    cross_layers: int = Field(default=2, ge=0)
    cross_rank: int | None = Field(default=32, ge=1)
    mlp_dims: tuple[int, ...] = (64,)
    n_experts: int = Field(default=2, ge=1)
    expert_dims: tuple[int, ...] = (32,)
    tower_dims: tuple[int, ...] = (16,)
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    log_inputs: bool = Field(default=True, description="sign(x)·log(1 + |x|) before standardising")
    epochs: int = Field(default=20, ge=1)
    batch_groups: int = Field(default=32, ge=1, description="groups (requests) per gradient step")
    lr: float = Field(default=1e-2, gt=0.0)
    weight_decay: float = Field(default=0.0, ge=0.0)
    patience: int = Field(default=4, ge=0, description="epochs without validation NDCG gain before stopping")
    lr_decay: float = Field(default=0.5, gt=0.0, le=1.0, description="lr factor after an epoch without gain")
    time_budget_s: float | None = Field(default=None, gt=0, description="wall-clock budget of the training loop")
    threads: int = Field(default=1, ge=1, description="torch threads while training")
    importance: bool = Field(default=True, description=(
        "report each feature's permutation importance on the validation rows (one scoring pass per feature)"))


class InputScaler(nn.Module):
    """Raw feature rows [N, F] (NaN: missing) → [N, F + M]: log-compressed, standardised, missing → 0, plus M
    0/1 indicators of the columns ``missing`` lists (see the module docstring)."""

    mean: torch.Tensor
    std: torch.Tensor
    missing: torch.Tensor
    log_inputs: torch.Tensor

    def __init__(self, n_features: int, n_missing: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))
        self.register_buffer("missing", torch.zeros(n_missing, dtype=torch.int64))
        self.register_buffer("log_inputs", torch.tensor(True))
        self.out_dim = n_features + n_missing

    @staticmethod
    def compress(x: torch.Tensor, log_inputs: bool) -> torch.Tensor:
        """sign(x)·log(1 + |x|) when ``log_inputs``, else x."""
        return torch.sign(x) * torch.log1p(torch.abs(x)) if log_inputs else x

    @torch.no_grad()
    def fit(self, rows: np.ndarray, log_inputs: bool) -> InputScaler:
        """Mean and std of the (compressed) training rows over their finite values; the columns with a missing one."""
        x = self.compress(torch.as_tensor(rows, dtype=torch.float64), log_inputs)
        finite = torch.isfinite(x)
        count = finite.sum(0).clamp(min=1)
        clean = torch.where(finite, x, torch.zeros(()))
        mean = clean.sum(0) / count
        var = (torch.where(finite, x - mean, torch.zeros(())) ** 2).sum(0) / count
        std = var.sqrt()
        self.mean.copy_(mean.float())
        self.std.copy_(torch.where(std > 1e-6, std, torch.ones(())).float())
        missing = torch.nonzero(~finite.all(0)).flatten()
        if len(missing) != len(self.missing):
            raise ValueError(f"the rows have {len(missing)} columns with a missing value, the scaler was built for "
                             f"{len(self.missing)}")
        self.missing = missing
        self.log_inputs.fill_(log_inputs)
        self.out_dim = len(self.mean) + len(self.missing)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The network's inputs of raw rows ``x``."""
        z = (self.compress(x, bool(self.log_inputs)) - self.mean) / self.std
        finite = torch.isfinite(z)
        z = torch.where(finite, z, torch.zeros((), dtype=z.dtype))
        return torch.cat([z, (~finite[:, self.missing]).to(z.dtype)], dim=1)


class RankingNet(nn.Module):
    """InputScaler → FeatureEmbedding → [cross network ‖ MLP] → MMoE (one gate) → tower → one score per row."""

    def __init__(self, n_features: int, n_missing: int, cfg: NeuralRankerConfig) -> None:
        super().__init__()
        self.scale = InputScaler(n_features, n_missing)
        self.embed = FeatureEmbedding((), self.scale.out_dim, cfg.embedding_dim)
        d0 = self.embed.out_dim
        self.cross = CrossNetwork(d0, cfg.cross_layers, cfg.cross_rank)
        self.deep = mlp(d0, cfg.mlp_dims, cfg.dropout)
        bottom = d0 + (cfg.mlp_dims[-1] if cfg.mlp_dims else d0)
        self.mmoe = MMoE(bottom, cfg.n_experts, cfg.expert_dims, 1, cfg.dropout)
        self.tower = nn.Sequential(mlp(self.mmoe.out_dim, cfg.tower_dims, cfg.dropout),
                                   nn.Linear(cfg.tower_dims[-1] if cfg.tower_dims else self.mmoe.out_dim, 1))

    def body(self, z: torch.Tensor) -> torch.Tensor:
        """Scores [N] of scaled inputs ``z`` [N, F + M] (training feeds these once scaled)."""
        x0 = self.embed(z[:, :0].long(), z)
        h = torch.cat([self.cross(x0), self.deep(x0)], dim=1)
        return self.tower(self.mmoe(h)[0]).squeeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scores [N] of raw feature rows ``x`` [N, F]."""
        return self.body(self.scale(x))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class NeuralRanker(CandidateFeatureRanker):
    """A fitted ranking network with the item statistics and sequential scorer its features need."""

    name = "neural"

    def __init__(self, net: RankingNet, config: NeuralRankerConfig, sources: Sequence[str], stats: ItemStats, *,
                 last_n: int = 20, sequential: CandidateSource | None = None, report: dict[str, Any] | None = None,
                 base: str | None = None, embedding: str | None = None, recency: bool = False) -> None:
        self.net = net.eval()
        self.config = config
        self._set_feature_inputs(sources, stats, last_n=last_n, sequential=sequential, report=report, base=base,
                                 embedding=embedding, recency=recency)
        if len(net.scale.mean) != len(self.feature_names):
            raise ValueError(f"the network reads {len(net.scale.mean)} features, the ranker builds "
                             f"{len(self.feature_names)} ({self.feature_names})")

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        """Scores [N] (float64) of feature rows [N, F], the prior included."""
        with torch.inference_mode():
            out = self.net(torch.from_numpy(np.ascontiguousarray(matrix, dtype=np.float32))).double().numpy()
        return out + prior_scores(matrix, self.feature_names, self.base)

    def score(self, batch: RankBatch) -> dict[str, np.ndarray]:
        """The network's scores [B, C]; NaN on pads."""
        out = np.full(batch.item_ids.shape, np.nan)
        matrix, valid = self.features(batch)
        if len(matrix):
            out[valid] = self.predict(matrix)
        return {RELEVANCE: out}

    def save(self, root: Path, sources: Mapping[str, CandidateSource]) -> str:
        """Write the ranker into ``root/ranker``; a sequential scorer that is one of ``sources`` is not repeated."""
        folder = root / "ranker"
        folder.mkdir(parents=True, exist_ok=True)
        data = save_tensors({k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()})
        with atomic_write(folder / WEIGHTS_FILE) as tmp:
            tmp.write_bytes(data)
        meta = {"format": FORMAT, "weights_sha256": _sha256(data), "config": self.config.model_dump(mode="json"),
                "missing": len(self.net.scale.missing), **self._feature_meta(folder, sources)}
        write_text_atomic(folder / META_FILE, json.dumps(meta, indent=1) + "\n")
        return "ranker"

    @classmethod
    def load(cls, root: Path, rel: str, sources: Mapping[str, CandidateSource],
             read_source: Callable[[Path], CandidateSource]) -> NeuralRanker:
        """The ranker :meth:`save` wrote at ``root/rel`` (``ArtifactError`` when its weights fail their checksum)."""
        folder = root / rel
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        if not isinstance(meta, dict) or meta.get("format") != FORMAT or "weights_sha256" not in meta:
            raise ArtifactError(f"{folder / META_FILE}: unsupported neural ranker format {meta!r:.80}")
        data = (folder / WEIGHTS_FILE).read_bytes()
        if _sha256(data) != meta["weights_sha256"]:
            raise ArtifactError(f"{folder / WEIGHTS_FILE}: SHA-256 differs from ranker.json's weights_sha256")
        config = NeuralRankerConfig.model_validate(meta["config"])
        net = RankingNet(len(meta["features"]), int(meta["missing"]), config)
        net.load_state_dict(load_tensors(data))
        ranker = cls(net, config, [str(s) for s in meta["sources"]], ItemStats.load(folder / STATS_FILE),
                     **feature_settings(meta, root, sources, read_source))
        ranker._check_saved_features(meta, folder / META_FILE)
        return ranker
