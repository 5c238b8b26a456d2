"""Building blocks of the rankers: feature embedding, DCN-v2 cross network, MLP and multi-gate mixture of experts."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class FeatureEmbedding(nn.Module):
    """x₀ = [E₁[c₁], …, E_F[c_F], num₁·v₁, …, num_G·v_G]: a table per categorical field, a vector per number."""

    def __init__(self, cardinalities: Sequence[int], n_numeric: int, dim: int) -> None:
        super().__init__()
        tables = [nn.Embedding(n, dim) for n in cardinalities]
        for table in tables:
            nn.init.normal_(table.weight, std=0.05)
        self.tables = nn.ModuleList(tables)
        self.numeric = nn.Parameter(torch.randn(n_numeric, dim) * 0.05)
        self.numeric_bias = nn.Parameter(torch.zeros(n_numeric, dim))
        self.out_dim = dim * (len(cardinalities) + n_numeric)

    def forward(self, cat: torch.Tensor, num: torch.Tensor) -> torch.Tensor:
        """[N, out_dim] concatenated field vectors."""
        parts = [table(cat[:, j]) for j, table in enumerate(self.tables)]
        if self.numeric.shape[0]:
            parts.append((num[:, :, None] * self.numeric + self.numeric_bias).flatten(1))
        return torch.cat(parts, dim=1)


class CrossNetwork(nn.Module):
    """DCN-v2 cross layers: x_{l+1} = x₀ ⊙ (W_l x_l + b_l) + x_l, with W_l = U_l V_lᵀ when ``rank`` is set."""

    def __init__(self, dim: int, n_layers: int, rank: int | None = None) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Linear(dim, dim) if rank is None
            else nn.Sequential(nn.Linear(dim, rank, bias=False), nn.Linear(rank, dim))
            for _ in range(n_layers)
        )

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        """Crossed features, same shape as ``x0``."""
        x = x0
        for layer in self.layers:
            x = x0 * layer(x) + x
        return x


def mlp(in_dim: int, dims: Sequence[int], dropout: float = 0.0) -> nn.Sequential:
    """Linear → ReLU (→ Dropout) blocks of widths ``dims``; an empty ``dims`` is the identity."""
    layers: list[nn.Module] = []
    for width in dims:
        layers += [nn.Linear(in_dim, width), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        in_dim = width
    return nn.Sequential(*layers)


class MMoE(nn.Module):
    """Multi-gate mixture of experts: h_t = Σ_e softmax(G_t x)_e · expert_e(x), one gate per task."""

    def __init__(self, in_dim: int, n_experts: int, expert_dims: Sequence[int], n_tasks: int,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.experts = nn.ModuleList(mlp(in_dim, expert_dims, dropout) for _ in range(n_experts))
        self.gates = nn.ModuleList(nn.Linear(in_dim, n_experts) for _ in range(n_tasks))
        self.out_dim = expert_dims[-1] if expert_dims else in_dim

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """One mixed representation [N, out_dim] per task."""
        experts = torch.stack([expert(x) for expert in self.experts], dim=1)  # [N, E, D]
        return [torch.einsum("ne,ned->nd", torch.softmax(gate(x), dim=1), experts) for gate in self.gates]
