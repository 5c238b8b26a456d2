"""The two-tower network: item tower (id + features) and user tower (id + pooled history + features)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from rankstack.retrieval.feature_tensors import FeatureEncoder


class FeatureBlock(nn.Module):
    """Σ of per-column embeddings: categorical lookups, mean-pooled multi-valued lookups, linear numeric."""

    def __init__(self, encoder: FeatureEncoder, dim: int) -> None:
        super().__init__()
        self.n_cat = len(encoder.categorical_)
        self.multi = list(encoder.multi_)
        self.tables = nn.ModuleList(nn.Embedding(c, dim, padding_idx=0) for c in encoder.cardinalities)
        self.numeric = nn.Linear(encoder.n_numeric, dim) if encoder.n_numeric else None

    def forward(self, feats: dict[str, torch.Tensor], rows: torch.Tensor) -> torch.Tensor | None:
        """Feature embedding [len(rows), dim], or None when there are no features."""
        parts = [self.tables[j](feats["cat"][rows, j]) for j in range(self.n_cat)]
        for j, col in enumerate(self.multi):
            idx = feats[f"multi.{col}"][rows]
            emb = self.tables[self.n_cat + j](idx)
            parts.append(emb.sum(1) / (idx > 0).sum(1, keepdim=True).clamp_min(1))
        if self.numeric is not None:
            parts.append(self.numeric(feats["num"][rows]))
        return torch.stack(parts).sum(0) if parts else None


def _mlp(d_in: int, hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Linear(hidden, d_out))


class TwoTowerNet(nn.Module):
    """Both towers end in an L2 normalisation, so ⟨user, item⟩ is a cosine in [-1, 1]."""

    def __init__(self, n_users: int, n_items: int, dim: int, hidden: int,
                 item_enc: FeatureEncoder, user_enc: FeatureEncoder, use_user_id: bool = True) -> None:
        super().__init__()
        self.n_users, self.n_items = n_users, n_items
        self.item_id = nn.Embedding(n_items, dim)
        self.user_id = nn.Embedding(n_users, dim) if use_user_id else None
        nn.init.normal_(self.item_id.weight, std=0.05)
        if self.user_id is not None:
            nn.init.normal_(self.user_id.weight, std=0.05)
        self.item_feat = FeatureBlock(item_enc, dim)
        self.user_feat = FeatureBlock(user_enc, dim)
        self.has_item_feat = bool(item_enc.cardinalities or item_enc.n_numeric)
        self.has_user_feat = bool(user_enc.cardinalities or user_enc.n_numeric)
        self.attn_proj = nn.Linear(dim, dim)
        self.attn_query = nn.Parameter(torch.zeros(dim))
        self.item_mlp = _mlp(dim * (1 + self.has_item_feat), hidden, dim)
        self.user_mlp = _mlp(dim * (2 + use_user_id + self.has_user_feat), hidden, dim)

    def items(self, ids: torch.Tensor, keep_id: torch.Tensor, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        """v_i = normalise(MLP([keep_i · e_id(i); f(i)])); keep 0 embeds an item from its features alone."""
        parts = [self.item_id(ids) * keep_id.unsqueeze(1).to(self.item_id.weight.dtype)]
        if self.has_item_feat:
            f = self.item_feat(feats, ids)
            assert f is not None
            parts.append(f)
        return F.normalize(self.item_mlp(torch.cat(parts, 1)), dim=1)

    def users(self, ids: torch.Tensor, history: torch.Tensor, feats: dict[str, torch.Tensor],
              keep_id: torch.Tensor | None = None) -> torch.Tensor:
        """u = normalise(MLP([keep_u · e_id(u); mean_j h_j; Σ_j α_j h_j; f(u)])) over the history items h (−1
        pads), α = softmax_j(qᵀ tanh(W h_j)) (additive attention); no e_id part when built without user ids."""
        mask = history >= 0
        h = self.item_id(history.clamp_min(0)) * mask.unsqueeze(2)
        count = mask.sum(1, keepdim=True).clamp_min(1)
        mean = h.sum(1) / count
        logits = torch.tanh(self.attn_proj(h)) @ self.attn_query
        logits = logits.masked_fill(~mask, float("-inf"))
        alpha = torch.nan_to_num(torch.softmax(logits, dim=1), nan=0.0)
        pooled = (alpha.unsqueeze(2) * h).sum(1)
        parts = [mean, pooled]
        if self.user_id is not None:
            e = self.user_id(ids)
            parts.insert(0, e if keep_id is None else e * keep_id.unsqueeze(1).to(e.dtype))
        if self.has_user_feat:
            f = self.user_feat(feats, ids)
            assert f is not None
            parts.append(f)
        return F.normalize(self.user_mlp(torch.cat(parts, 1)), dim=1)


class StreamingFrequency:
    """Sampling probability of items in the stream of batches (Yi et al., RecSys 2019).

    Per item: A = last step seen, B = smoothed gap between sightings; on a sighting at step t,
    B ← (1 − α) B + α (t − A), A ← t. The expected appearances per batch are q = 1/B.
    """

    def __init__(self, n_items: int, batch_size: int, alpha: float, device: torch.device) -> None:
        self.alpha = alpha
        self.step = 0
        self.last = torch.zeros(n_items, device=device)
        self.gap = torch.full((n_items,), max(n_items / batch_size, 1.0), device=device)

    def update(self, items: torch.Tensor) -> None:
        """Record one batch of (possibly repeated) item ids."""
        self.step += 1
        seen = torch.unique(items)
        self.gap[seen] = (1 - self.alpha) * self.gap[seen] + self.alpha * (self.step - self.last[seen])
        self.last[seen] = float(self.step)

    def log_q(self, items: torch.Tensor) -> torch.Tensor:
        """log q_i = −log B_i."""
        return -torch.log(self.gap[items].clamp_min(1e-6))

    def log_q_mixed(self, items: torch.Tensor, uniform: int, n_items: int) -> torch.Tensor:
        """log(q_i + M/N): the expected count of item i among a batch's candidates when M uniform draws from N
        items join the in-batch ones. Every candidate, in-batch or uniform, is corrected by this one value — the
        mixture proposal q* ∝ B·p_i + M/N of mixed negative sampling (Yang et al., WWW 2020 Companion, "Mixed
        Negative Sampling for Learning Two-tower Neural Networks in Recommendations"); with M = 0 it is Yi et
        al.'s log q_i. Correcting each kind by its own rate alone (log q_i, log M/N) would count Z twice."""
        log_q = self.log_q(items)
        return torch.log(log_q.exp() + uniform / n_items) if uniform else log_q
