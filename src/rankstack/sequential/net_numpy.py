"""The serving pass of :meth:`SASRecNet.last_hidden` in NumPy, for CPU batches of a few histories.

torch spends microseconds dispatching each operation, and a serving batch of one to eight histories is ~40 small
operations, so the same arithmetic in NumPy on the same weights is faster there (docs/benchmarks.md, "Issue 20,
twentieth session"). The weights are gathered once as NumPy arrays (the projections transposed into contiguous
copies, which multiply twice as fast as transposed views) and gathered again when the network changed: a tensor
changed in place (a training step, ``load_state_dict``) bumps its version counter, and a network moved or
converted, or a replaced fused projection, has new storage (:meth:`NumpyLastHidden.current`). The formulas are
``CausalBlock.infer``'s: pre-LN attention of each position over the keys it may see (earlier non-pad positions
and itself), a GELU feed-forward, the last block for the last position only, the final LayerNorm, and 0 for an
empty history. GELU is torch's own function on a shared view.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from rankstack.sequential.net import CausalBlock, SASRecNet


@dataclass(frozen=True)
class _Norm:
    """A LayerNorm's weight, bias and epsilon."""

    weight: np.ndarray
    bias: np.ndarray
    eps: float

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """LN(x) = (x − mean) / sqrt(var + eps) · weight + bias over the last axis (biased variance, as torch)."""
        inverse_d = np.float32(1.0 / x.shape[-1])
        centred = x - x.sum(axis=-1, keepdims=True) * inverse_d
        var = np.square(centred).sum(axis=-1, keepdims=True) * inverse_d
        return centred * (1.0 / np.sqrt(var + np.float32(self.eps))) * self.weight + self.bias


@dataclass(frozen=True)
class _Block:
    """One causal block's weights as NumPy views (projections transposed for ``x @ w``)."""

    norm1: _Norm
    qkv: np.ndarray  # [D, 3D]
    qkv_bias: np.ndarray
    out: np.ndarray  # [D, D]
    out_bias: np.ndarray
    norm2: _Norm
    ffn_in: np.ndarray
    ffn_in_bias: np.ndarray
    gelu: str
    ffn_out: np.ndarray
    ffn_out_bias: np.ndarray
    heads: int


def _view(tensor: torch.Tensor) -> np.ndarray:
    """A NumPy view of a CPU float32 tensor's data (no copy)."""
    return cast(np.ndarray, tensor.detach().numpy())


def _projection(layer: nn.Linear) -> np.ndarray:
    """A linear layer's weight [D_out, D_in] as a contiguous [D_in, D_out] copy, for ``x @ w``."""
    return np.ascontiguousarray(_view(layer.weight).T)


def _gather_norm(layer: nn.LayerNorm) -> _Norm:
    return _Norm(_view(layer.weight), _view(layer.bias), float(layer.eps))


def _gather_block(block: CausalBlock) -> _Block:
    ffn_in, gelu, ffn_out = (cast(nn.Linear, block.ffn[0]), cast(nn.GELU, block.ffn[1]),
                             cast(nn.Linear, block.ffn[3]))
    return _Block(_gather_norm(block.norm1), _projection(block.qkv), _view(block.qkv.bias), _projection(block.out),
                  _view(block.out.bias), _gather_norm(block.norm2), _projection(ffn_in), _view(ffn_in.bias),
                  gelu.approximate, _projection(ffn_out), _view(ffn_out.bias), block.heads)


def _versions(parameters: list[nn.Parameter]) -> tuple[int, ...]:
    """Each tensor's version counter (torch bumps it on every in-place change)."""
    return tuple(p._version for p in parameters)


def storage_key(net: SASRecNet) -> tuple[int, ...]:
    """Where the network's tensors live now: the item table and every block's fused projection."""
    blocks = cast(list[CausalBlock], list(net.blocks))
    return (id(net), net.items.weight.data_ptr(), *(block.qkv.weight.data_ptr() for block in blocks))


class NumpyLastHidden:
    """``SASRecNet.last_hidden`` in eval mode, computed with NumPy on views of the network's weights."""

    def __init__(self, net: SASRecNet) -> None:
        if not self.supports(net):
            raise ValueError("the NumPy pass needs a float32 network on the CPU")
        self.key = storage_key(net)
        self.parameters = list(net.parameters())
        self.versions = _versions(self.parameters)
        self.max_len, self.dim = net.max_len, net.dim
        self.items = _view(net.items.weight)
        self.positions = _view(net.positions.weight)
        self.blocks = [_gather_block(block) for block in cast(list[CausalBlock], list(net.blocks))]
        self.norm = _gather_norm(net.norm)
        self.causal = np.tril(np.ones((net.max_len, net.max_len), dtype=bool))
        self.eye = np.eye(net.max_len, dtype=bool)

    @staticmethod
    def supports(net: SASRecNet) -> bool:
        """Whether every parameter is a float32 tensor on the CPU (else torch's own pass serves)."""
        return all(p.device.type == "cpu" and p.dtype == torch.float32 for p in net.parameters())

    def current(self, net: SASRecNet) -> bool:
        """Whether these arrays still are ``net``'s weights (same storage, nothing changed in place since)."""
        return storage_key(net) == self.key and _versions(self.parameters) == self.versions

    def __call__(self, seq: np.ndarray) -> np.ndarray:
        """``seq`` [B, L] of shifted ids, left-padded with 0 → the last position's hidden state [B, D] (float32)."""
        length = seq.shape[1]
        if length > self.max_len:
            raise ValueError(f"sequence length {length} exceeds max_len {self.max_len}")
        valid = seq > 0
        x = self.items[seq] * np.float32(math.sqrt(self.dim)) + self.positions[self.max_len - length:]
        allowed = None  # every row full: plain causal attention
        if not valid.all():
            allowed = (self.causal[:length, :length] & valid[:, None, :]) | self.eye[:length, :length]
        for i, block in enumerate(self.blocks):
            x = self._block(block, x, allowed, last_only=i == len(self.blocks) - 1)
        if not self.blocks:
            x = x[:, -1:]
        return cast(np.ndarray, self.norm(x[:, 0]) * valid[:, -1:])

    def _block(self, block: _Block, x: np.ndarray, allowed: np.ndarray | None, last_only: bool) -> np.ndarray:
        """One block: x ← x + Attn(LN1(x)) W_out ; x ← x + FFN(LN2(x)) (the last position only when ``last_only``)."""
        length, dim = x.shape[1], x.shape[2]
        h = block.norm1(x)
        if last_only:  # the last query sees every allowed key: one query row, the mask's last row
            q = _linear(h[:, -1:], block.qkv[:, :dim], block.qkv_bias[:dim])
            kv = _linear(h, block.qkv[:, dim:], block.qkv_bias[dim:])
            k, v = kv[..., :dim], kv[..., dim:]
            x = x[:, -1:]
            mask = None if allowed is None else allowed[:, -1:]
        else:
            qkv = _linear(h, block.qkv, block.qkv_bias)
            q, k, v = qkv[..., :dim], qkv[..., dim:2 * dim], qkv[..., 2 * dim:]
            mask = self.causal[:length, :length] if allowed is None else allowed
        x = x + _linear(_attention(q, k, v, mask, block.heads), block.out, block.out_bias)
        h = _linear(block.norm2(x), block.ffn_in, block.ffn_in_bias)
        h = F.gelu(torch.from_numpy(h), approximate=block.gelu).numpy()
        return x + _linear(h, block.ffn_out, block.ffn_out_bias)


def _linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """x W + b over the last axis, as one 2-D product (``weight`` [D_in, D_out])."""
    flat = x.reshape(-1, x.shape[-1]) @ weight + bias
    return cast(np.ndarray, flat.reshape(*x.shape[:-1], weight.shape[1]))


def _attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray | None, heads: int) -> np.ndarray:
    """softmax(q kᵀ / √d_h, over the keys ``mask`` allows) v per head; q [B, Lq, D], k and v [B, L, D], mask [Lq, L]
    or [B, Lq, L] (True: may attend) → [B, Lq, D]."""
    batch, queries, dim = q.shape
    length, head_dim = k.shape[1], dim // heads
    qh = q.reshape(batch, queries, heads, head_dim).transpose(0, 2, 1, 3)
    kh = k.reshape(batch, length, heads, head_dim).transpose(0, 2, 3, 1)
    vh = v.reshape(batch, length, heads, head_dim).transpose(0, 2, 1, 3)
    scores = (qh @ kh) * np.float32(1.0 / math.sqrt(head_dim))  # [B, H, Lq, L]
    if mask is not None:
        scores = np.where(mask[:, None] if mask.ndim == 3 else mask, scores, np.float32(-np.inf))
    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
    weights /= weights.sum(axis=-1, keepdims=True)
    return cast(np.ndarray, (weights @ vh).transpose(0, 2, 1, 3).reshape(batch, queries, dim))
