"""Top-K off-policy REINFORCE on top of a sequential model's user state (Chen et al., WSDM 2019): the policy and
behaviour heads, the corrected weight and the saved files. Training lives in
:mod:`rankstack.bandits.reinforce_seq_train`; this module is what loading and scoring need.

State: s = the frozen SASRec's last hidden state of the user's history before the logged event
(:meth:`rankstack.sequential.sasrec.SASRec.user_states`). Both heads are softmaxes over the catalogue,

    π(a | s) = softmax_a(s W e_a + b_a),

with e_a the SASRec item table (frozen), W [D, D] (identity at the start with ``warm_start``: π starts as the
SASRec next-item distribution) and b [n_items] learned. β(a | s) has the same form with its own W and b.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from safetensors.torch import load_file, save_file
from torch import nn

FORMAT = "rankstack.reinforce_seq/1"
WEIGHTS, META = "policy.safetensors", "policy.json"


class SeqReinforceConfig(BaseModel):
    """Training settings. ``negatives``: None → full softmax over the catalogue; m → sampled softmax with m shared
    negatives per batch drawn from ``proposal`` (uniform or item popularity in the log) with the logQ correction.
    ``validation``: share of the rows (the latest) held out for the report's validation objective."""

    model_config = ConfigDict(extra="forbid")
    top_k: int = Field(default=1, ge=1)
    cap: float = Field(default=10.0, gt=0)
    correction: bool = True
    negatives: int | None = Field(default=None, ge=1)
    proposal: Literal["uniform", "popularity"] = "uniform"
    epochs: int = Field(default=10, ge=1)
    behaviour_epochs: int = Field(default=5, ge=1)
    lr: float = Field(default=0.01, gt=0)
    batch_size: int = Field(default=512, ge=1)
    warm_start: bool = True
    validation: float = Field(default=0.1, ge=0, lt=1)
    seed: int = 0


def topk_weights(pi: torch.Tensor, beta: torch.Tensor, top_k: int, cap: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(w, capped) with w = min(π/β, c) · λ_K(π), λ_K(π) = K(1 − π)^{K−1}; ``capped``: where π/β > c."""
    ratio = pi / beta.clamp_min(1e-12)
    return ratio.clamp_max(cap) * top_k * (1 - pi) ** (top_k - 1), ratio > cap


class SoftmaxHead(nn.Module):
    """logits(s)_a = s W e_a + b_a over a frozen item table E [n_items, D]."""

    items: torch.Tensor

    def __init__(self, item_table: torch.Tensor, warm_start: bool = True) -> None:
        super().__init__()
        n_items, dim = item_table.shape
        self.register_buffer("items", item_table.detach().float().clone())
        self.proj = nn.Parameter(torch.eye(dim) if warm_start else torch.zeros(dim, dim))
        self.bias = nn.Parameter(torch.zeros(n_items))

    @property
    def n_items(self) -> int:
        """Catalogue size."""
        return int(self.bias.shape[0])

    def user_vectors(self, states: torch.Tensor) -> torch.Tensor:
        """s W [B, D]: the query the item table is scored against."""
        return states @ self.proj

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        """Logits over the whole catalogue [B, n_items]."""
        return self.user_vectors(states) @ self.items.T + self.bias

    def pair_logits(self, states: torch.Tensor, item_ids: torch.Tensor) -> torch.Tensor:
        """Logit of each row's own item [B] (``item_ids`` [B])."""
        return (self.user_vectors(states) * self.items[item_ids]).sum(-1) + self.bias[item_ids]

    def shared_logits(self, states: torch.Tensor, item_ids: torch.Tensor) -> torch.Tensor:
        """Logits [B, m] of the same ``item_ids`` [m] for every row (shared sampled negatives)."""
        return self.user_vectors(states) @ self.items[item_ids].T + self.bias[item_ids]


class SeqReinforcePolicy:
    """A trained policy head π (and the behaviour head β when it was learned) over a SASRec's item table."""

    def __init__(self, policy: SoftmaxHead, behaviour: SoftmaxHead | None, config: SeqReinforceConfig,
                 report: dict[str, object] | None = None) -> None:
        self.policy_, self.behaviour_, self.config = policy, behaviour, config
        self.report_: dict[str, object] = dict(report or {})

    @property
    def n_items(self) -> int:
        """Catalogue size."""
        return self.policy_.n_items

    def logits(self, states: torch.Tensor) -> torch.Tensor:
        """π's logits [B, n_items] for SASRec states [B, D]."""
        with torch.no_grad():
            return self.policy_(states.float())

    def probs(self, states: torch.Tensor) -> torch.Tensor:
        """π(· | s) [B, n_items]."""
        return torch.softmax(self.logits(states), dim=-1)

    def behaviour_probs(self, states: torch.Tensor) -> torch.Tensor:
        """The learned β(· | s) [B, n_items] (ValueError when the log had every propensity and none was learned)."""
        if self.behaviour_ is None:
            raise ValueError("no behaviour head: the training log carried every propensity")
        with torch.no_grad():
            return torch.softmax(self.behaviour_(states.float()), dim=-1)

    def save(self, folder: Path | str) -> Path:
        """Write ``policy.safetensors`` (both heads and the item table) and ``policy.json`` (config, report)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {f"policy.{k}": v.detach().contiguous() for k, v in self.policy_.state_dict().items()}
        if self.behaviour_ is not None:
            tensors |= {f"behaviour.{k}": v.detach().contiguous() for k, v in self.behaviour_.state_dict().items()
                        if k != "items"}  # the same item table as the policy's
        save_file(tensors, str(folder / WEIGHTS))
        meta = {"format": FORMAT, "config": self.config.model_dump(mode="json"),
                "behaviour": self.behaviour_ is not None, "report": self.report_}
        (folder / META).write_text(json.dumps(meta, indent=2, sort_keys=True))
        return folder

    @classmethod
    def load(cls, folder: Path | str) -> SeqReinforcePolicy:
        """Read back what :meth:`save` wrote (ValueError naming the file on a wrong format)."""
        folder = Path(folder)
        meta = json.loads((folder / META).read_text())
        if meta.get("format") != FORMAT:
            raise ValueError(f"{folder / META}: format must be {FORMAT!r}, got {meta.get('format')!r}")
        tensors = load_file(str(folder / WEIGHTS))
        items = tensors["policy.items"]
        policy = SoftmaxHead(items)
        policy.load_state_dict({k[7:]: v for k, v in tensors.items() if k.startswith("policy.")})
        behaviour = None
        if meta["behaviour"]:
            behaviour = SoftmaxHead(items)
            behaviour.load_state_dict({"items": items} | {k[10:]: v for k, v in tensors.items()
                                                          if k.startswith("behaviour.")})
        return cls(policy, behaviour, SeqReinforceConfig.model_validate(meta["config"]), meta.get("report"))
