"""Histories as the network reads them: shifted ids (0 pads, item i is i + 1), left-padded."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def pad_left(histories: Sequence[np.ndarray], max_len: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The last ``max_len`` items of each history, shifted by one and left-padded with 0: [B, L].

    L is the longest kept history (at least 1), so short batches stay small.
    """
    return torch.from_numpy(pad_left_array(histories, max_len)).to(device)


def pad_left_array(histories: Sequence[np.ndarray], max_len: int) -> np.ndarray:
    """:func:`pad_left` as an int64 NumPy array."""
    kept = [np.asarray(h, dtype=np.int64)[-max_len:] for h in histories]
    length = max(1, max((len(h) for h in kept), default=1))
    out = np.zeros((len(kept), length), dtype=np.int64)
    for row, h in enumerate(kept):
        if len(h):
            out[row, length - len(h):] = h + 1
    return out
