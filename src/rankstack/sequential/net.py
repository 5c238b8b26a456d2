"""The SASRec network: item + learned position embeddings, pre-LN causal self-attention blocks, tied output."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, cast

import torch
from torch import nn
from torch.nn import functional as F


class CausalBlock(nn.Module):
    """x ← x + Drop(MHA(LN(x))) ; x ← x + Drop(FFN(LN(x))), attention restricted to earlier, non-pad items."""

    def __init__(self, dim: int, heads: int, dropout: float, ffn_mult: int = 1) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"hidden dim {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_mult * dim), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(ffn_mult * dim, dim))
        self.drop = nn.Dropout(dropout)
        self.attn_dropout = dropout

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """``x`` [B, L, D]; ``allowed`` [B, 1, L, L] bool, True where query i may attend key j."""
        b, length, dim = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, length, 3, self.heads, dim // self.heads).unbind(2)
        attn = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=allowed,
            dropout_p=self.attn_dropout if self.training else 0.0)
        x = x + self.drop(self.out(attn.transpose(1, 2).reshape(b, length, dim)))
        return x + self.drop(self.ffn(self.norm2(x)))

    def infer(self, x: torch.Tensor, allowed: torch.Tensor | None, last_only: bool) -> torch.Tensor:
        """Eval-mode ``forward`` without dropout or pad zeroing; ``allowed`` None means every row is full
        (plain causal attention); ``last_only`` returns just the last position [B, 1, D].

        The same operations as ``forward``, called as functions on the weights (each submodule's ``__call__`` and
        the identity dropouts cost ~5% of a small serving batch's pass; reaching the weights through the modules
        again on every pass, ~10%), and the last block projects the query of the last position only."""
        b, length, dim = x.shape
        w = self.eval_weights()
        h = F.layer_norm(x, w.norm_shape, w.ln1_weight, w.ln1_bias, w.ln1_eps)
        split = (b, -1, self.heads, dim // self.heads)
        if last_only:  # the last query attends to every (allowed) key: no causal mask, one query row
            q = F.linear(h[:, -1:], w.q_weight, w.q_bias).view(split)
            k, v = F.linear(h, w.kv_weight, w.kv_bias).view(b, length, 2, self.heads, dim // self.heads).unbind(2)
            x = x[:, -1:]
            allowed = None if allowed is None else allowed[:, :, -1:]
        else:
            q, k, v = F.linear(h, w.qkv_weight, w.qkv_bias).view(b, length, 3, self.heads, dim // self.heads).unbind(2)
        attn = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                              attn_mask=allowed, is_causal=allowed is None and not last_only)
        x = x + F.linear(attn.transpose(1, 2).reshape(b, x.shape[1], dim), w.out_weight, w.out_bias)
        h = F.layer_norm(x, w.norm_shape, w.ln2_weight, w.ln2_bias, w.ln2_eps)
        h = F.linear(F.gelu(F.linear(h, w.ffn_in_weight, w.ffn_in_bias), approximate=w.gelu_approximate),
                     w.ffn_out_weight, w.ffn_out_bias)
        return x + h

    _eval_weights: _BlockWeights | None = None

    def eval_weights(self) -> _BlockWeights:
        """This block's weights gathered for :meth:`infer`, kept while the fused projection's weight is the same
        tensor in the same storage: training and ``load_state_dict`` update the weights in place, which the kept
        references and views see; ``to()`` / ``half()`` move every parameter to new storage and a new layer is a new
        tensor, so both gather again."""
        kept = self._eval_weights
        qkv = self.qkv.weight
        if kept is None or kept.qkv_weight is not qkv or kept.storage != qkv.data_ptr():
            kept = self._eval_weights = _BlockWeights.of(self)
        return kept


@dataclass(frozen=True)
class _BlockWeights:
    """The tensors and settings one :meth:`CausalBlock.infer` pass reads, gathered once."""

    storage: int  # where the fused projection's weight (``qkv_weight``) was when these were gathered
    norm_shape: tuple[int, ...]
    ln1_weight: torch.Tensor
    ln1_bias: torch.Tensor
    ln1_eps: float
    qkv_weight: torch.Tensor
    qkv_bias: torch.Tensor
    q_weight: torch.Tensor
    q_bias: torch.Tensor
    kv_weight: torch.Tensor
    kv_bias: torch.Tensor
    out_weight: torch.Tensor
    out_bias: torch.Tensor
    ln2_weight: torch.Tensor
    ln2_bias: torch.Tensor
    ln2_eps: float
    ffn_in_weight: torch.Tensor
    ffn_in_bias: torch.Tensor
    gelu_approximate: str
    ffn_out_weight: torch.Tensor
    ffn_out_bias: torch.Tensor

    @staticmethod
    def of(block: CausalBlock) -> _BlockWeights:
        """Gather ``block``'s weights (the query and key/value rows of the fused projection as views)."""
        dim = block.qkv.weight.shape[1]
        ffn_in, gelu, ffn_out = (cast(nn.Linear, block.ffn[0]), cast(nn.GELU, block.ffn[1]),
                                 cast(nn.Linear, block.ffn[3]))
        w, bias = block.qkv.weight, block.qkv.bias
        return _BlockWeights(w.data_ptr(), tuple(block.norm1.normalized_shape), block.norm1.weight, block.norm1.bias,
                             block.norm1.eps, w, bias, w[:dim], bias[:dim], w[dim:], bias[dim:], block.out.weight,
                             block.out.bias, block.norm2.weight, block.norm2.bias, block.norm2.eps, ffn_in.weight,
                             ffn_in.bias, gelu.approximate, ffn_out.weight, ffn_out.bias)


class SASRecShape(Protocol):
    """The architecture settings the network reads (a ``SASRecConfig`` has them)."""

    max_len: int
    hidden_dim: int
    blocks: int
    heads: int
    dropout: float
    ffn_mult: int


class SASRecNet(nn.Module):
    """Hidden state h_t of every position; score(t, i) = ⟨h_t, e_i⟩ with the input item embeddings (tied).

    Item ids are shifted by one inside the network: 0 is padding, item i is row i + 1.
    """

    def __init__(self, n_items: int, shape: SASRecShape) -> None:
        super().__init__()
        max_len, dim, blocks, heads = shape.max_len, shape.hidden_dim, shape.blocks, shape.heads
        dropout, ffn_mult = shape.dropout, shape.ffn_mult
        self.n_items, self.max_len, self.dim = n_items, max_len, dim
        self.items = nn.Embedding(n_items + 1, dim, padding_idx=0)
        self.positions = nn.Embedding(max_len, dim)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(CausalBlock(dim, heads, dropout, ffn_mult) for _ in range(blocks))
        self.norm = nn.LayerNorm(dim)
        nn.init.normal_(self.items.weight, std=dim**-0.5)
        nn.init.normal_(self.positions.weight, std=dim**-0.5)
        with torch.no_grad():
            self.items.weight[0].zero_()

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """``seq`` [B, L] of shifted ids, left-padded with 0 → hidden states [B, L, D] (0 at pads)."""
        length = seq.shape[1]
        if length > self.max_len:
            raise ValueError(f"sequence length {length} exceeds max_len {self.max_len}")
        valid = seq > 0
        pos = torch.arange(self.max_len - length, self.max_len, device=seq.device)
        x = self.items(seq) * math.sqrt(self.dim) + self.positions(pos)
        x = self.drop(x) * valid.unsqueeze(-1)
        causal = torch.ones(length, length, dtype=torch.bool, device=seq.device).tril()
        eye = torch.eye(length, dtype=torch.bool, device=seq.device)
        allowed = ((causal & valid[:, None, :]) | eye).unsqueeze(1)
        for block in self.blocks:
            x = block(x, allowed) * valid.unsqueeze(-1)
        return self.norm(x) * valid.unsqueeze(-1)

    def item_table(self) -> torch.Tensor:
        """Output embeddings of the real items [n_items, D] (row i is internal item i)."""
        return self.items.weight[1:]

    def last_hidden(self, seq: torch.Tensor) -> torch.Tensor:
        """Hidden state at the last position [B, D] (sequences are left-padded, so that is the newest item).

        In eval mode this is the serving path: pads are only masked (their states never reach a real position),
        attention is plain causal when no row is padded, and the last block computes the last position only.
        """
        if self.training:
            return self.forward(seq)[:, -1]
        length = seq.shape[1]
        if length > self.max_len:
            raise ValueError(f"sequence length {length} exceeds max_len {self.max_len}")
        valid = seq > 0
        x = F.embedding(seq, self.items.weight) * math.sqrt(self.dim) + self.positions.weight[self.max_len - length:]
        allowed = None
        if not bool(valid.all()):
            causal, eye = self._masks(seq.device)
            allowed = ((causal[-length:, -length:] & valid[:, None, :]) | eye[:length, :length]).unsqueeze(1)
        blocks: list[CausalBlock] = list(self.blocks)  # type: ignore[arg-type]
        for i, block in enumerate(blocks):
            x = block.infer(x, allowed, last_only=i == len(blocks) - 1)
        if not blocks:
            x = x[:, -1:]
        norm = self.norm
        return F.layer_norm(x[:, 0], norm.normalized_shape, norm.weight, norm.bias, norm.eps) * valid[:, -1:]

    _mask_cache: tuple[torch.device, torch.Tensor, torch.Tensor] | None = None

    def _masks(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """The causal (lower-triangular) and identity masks of ``max_len`` on ``device``, built once (the serving
        path slices them instead of building two small tensors per call)."""
        cached = self._mask_cache
        if cached is None or cached[0] != device:
            causal = torch.ones(self.max_len, self.max_len, dtype=torch.bool, device=device).tril()
            cached = self._mask_cache = (device, causal, torch.eye(self.max_len, dtype=torch.bool, device=device))
        return cached[1], cached[2]
