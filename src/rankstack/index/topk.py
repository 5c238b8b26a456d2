"""Top-k over torch scores with rankstack's one tie rule (equal scores: lower item id first), for the exact index,
the evaluator and every ``CandidateSource.retrieve``; numpy top-k is in :mod:`rankstack.candidates`."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from rankstack.candidates import PAD_ITEM


def topk_excluding(
    scores: torch.Tensor, k: int, exclude: sp.csr_matrix | None, user_ids: np.ndarray, *, in_place: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k (values, indices) of ``scores`` [batch, n_items] after setting excluded items to -inf.

    Equal scores go to the lower item id (:func:`topk_lowest_id`). Rows with fewer than ``k`` allowed items are
    padded with index -1 and score -inf. ``in_place``: the caller owns ``scores`` (a fresh tensor no one else
    reads), so the excluded items are set in it rather than in a copy.
    """
    original = scores
    scores = scores.float()
    if exclude is not None:
        rows = exclude[user_ids]
        counts = np.diff(rows.indptr)
        if rows.nnz:
            r = torch.from_numpy(np.repeat(np.arange(len(user_ids)), counts)).to(scores.device)
            c = torch.from_numpy(rows.indices.astype(np.int64)).to(scores.device)
            if scores is original and not (in_place and _writable(scores)):
                scores = scores.clone()
            scores[r, c] = float("-inf")
    k_eff = min(k, scores.shape[1])
    values, indices = topk_lowest_id(scores, k_eff)
    indices = torch.where(torch.isneginf(values), torch.full_like(indices, PAD_ITEM), indices)
    if k_eff < k:
        pad = k - k_eff
        values = torch.cat([values, values.new_full((values.shape[0], pad), float("-inf"))], dim=1)
        indices = torch.cat([indices, indices.new_full((indices.shape[0], pad), PAD_ITEM)], dim=1)
    return values, indices


def _writable(scores: torch.Tensor) -> bool:
    """No two elements share memory (an ``expand``-ed row would be written once for every user)."""
    return all(stride > 0 or size <= 1 for stride, size in zip(scores.stride(), scores.shape, strict=True))


def topk_lowest_id(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k largest (values, column indices) of each row of ``scores`` [rows, n], k ≤ n; equal scores go to the
    lower column index, both in which tied entries make the cut and in their order — rankstack's one tie rule.

    ``torch.topk`` leaves both unspecified. Here: its top k + 1, re-sorted by (value descending, index
    ascending); a row whose (k + 1)-th value equals its k-th has ties across the cut, and only in such rows are
    the tied slots refilled with the lowest indices holding that value.
    """
    n = scores.shape[1]
    values, indices = torch.topk(scores, min(k + 1, n), dim=1)
    if k == 0 or scores.shape[0] == 0:
        return values[:, :k], indices[:, :k]
    indices, by_index = torch.sort(indices, dim=1)
    values = values.gather(1, by_index)
    by_value = torch.sort(values, dim=1, descending=True, stable=True).indices
    values, indices = values.gather(1, by_value), indices.gather(1, by_value)
    if k == n:
        return values, indices
    short = values[:, k] == values[:, k - 1]
    values, indices = values[:, :k].contiguous(), indices[:, :k].contiguous()
    if bool(short.any()):
        _refill_ties(scores, values, indices, torch.nonzero(short).squeeze(1))
    return values, indices


def _refill_ties(scores: torch.Tensor, values: torch.Tensor, indices: torch.Tensor, rows: torch.Tensor) -> None:
    """In ``rows``, whose k-th value ties with entries left out, put the lowest indices holding that value into
    the slots it occupies (the last ones of the row), in place."""
    k = indices.shape[1]
    kth = values[rows, k - 1 :]
    need = (values[rows] == kth).sum(dim=1)
    block = scores if len(rows) == scores.shape[0] else scores.index_select(0, rows)
    at, cols = torch.nonzero(block == kth, as_tuple=True)  # row-major: each row's tied indices, ascending
    count = torch.bincount(at, minlength=len(rows))
    rank = torch.arange(len(at), device=scores.device) - (torch.cumsum(count, dim=0) - count)[at]
    keep = rank < need[at]
    at, rank = at[keep], rank[keep]
    indices[rows[at], k - need[at] + rank] = cols[keep]
