"""Vectorised training windows over per-user item sequences (shifted ids: 0 pads, item i is i + 1)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def pad_left(histories: Sequence[np.ndarray], max_len: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The last ``max_len`` items of each history, shifted by one and left-padded with 0: [B, L].

    L is the longest kept history (at least 1), so short batches stay small.
    """
    kept = [np.asarray(h, dtype=np.int64)[-max_len:] for h in histories]
    length = max(1, max((len(h) for h in kept), default=1))
    out = np.zeros((len(kept), length), dtype=np.int64)
    for row, h in enumerate(kept):
        if len(h):
            out[row, length - len(h):] = h + 1
    return torch.from_numpy(out).to(device)


class SequenceTable:
    """All training sequences in one left-aligned tensor [U, Lmax] on the device, plus their lengths."""

    def __init__(self, sequences: Sequence[np.ndarray], device: torch.device) -> None:
        lengths = np.array([len(s) for s in sequences], dtype=np.int64)
        width = max(1, int(lengths.max(initial=1)))
        table = np.zeros((len(sequences), width), dtype=np.int64)
        for row, s in enumerate(sequences):
            table[row, : len(s)] = np.asarray(s, dtype=np.int64) + 1
        self.table = torch.from_numpy(table).to(device)
        self.lengths = torch.from_numpy(lengths).to(device)

    def windows(self, rows: torch.Tensor, max_len: int, ends: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, targets) [B, max_len] from the items before each ``ends`` (exclusive) of ``rows``.

        inputs are items [e-1-max_len, e-1), targets the next item at each position; both left-padded.
        """
        offsets = torch.arange(-max_len - 1, 0, device=rows.device)
        idx = ends[:, None] + offsets[None, :]
        window = self.table[rows[:, None], idx.clamp_min(0)] * (idx >= 0)
        return window[:, :-1], window[:, 1:]

    def sample_ends(self, rows: torch.Tensor, max_len: int, crop: str, gen: torch.Generator) -> torch.Tensor:
        """Window ends: the sequence end (``last``), or uniform over ends that fill a whole window (``random``)."""
        lengths = self.lengths[rows]
        if crop == "last":
            return lengths
        low = torch.minimum(lengths, torch.full_like(lengths, max_len + 1))
        span = (lengths - low + 1).clamp_min(1)
        draw = torch.rand(rows.shape, device=rows.device, generator=gen)
        return low + (draw * span).long().clamp_max(span - 1)
