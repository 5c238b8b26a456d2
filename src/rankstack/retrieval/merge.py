"""Merge several sources' candidates: per-source quotas, weighted reciprocal-rank fusion, de-duplication.

Every merged candidate keeps, for each source, whether it proposed the item, its score and its rank,
as [batch, k, n_sources] arrays a ranker can use as features and diagnostics can attribute recall with.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from rankstack.candidates import PAD_ITEM, Candidates, stable_lexsort
from rankstack.device import resolve_device


class MergeConfig(BaseModel):
    """``k`` merged slots; ``quotas[s]``: source s's top-q items are always kept (before the fused fill);
    ``weights[s]`` (default 1) and ``rrf_k`` shape the fused score that orders everything else."""

    model_config = ConfigDict(extra="forbid")
    k: int = Field(default=200, ge=1)
    quotas: dict[str, int] = Field(default_factory=dict)
    weights: dict[str, float] = Field(default_factory=dict)
    rrf_k: float = Field(default=60.0, ge=0.0)


@dataclass(frozen=True)
class MergedCandidates:
    """Merged top-k per user with per-source attribution (``sources[j]`` names the last axis)."""

    item_ids: np.ndarray  # [batch, k] int64, -1 pads
    scores: np.ndarray  # [batch, k] fused score, -inf pads
    sources: tuple[str, ...]
    source_scores: np.ndarray  # [batch, k, n_sources] float32, NaN where the source did not propose it
    source_ranks: np.ndarray  # [batch, k, n_sources] int32 (0 = best), -1 where not proposed

    @property
    def proposed_by(self) -> np.ndarray:
        """Bool [batch, k, n_sources]: source j proposed this candidate."""
        return self.source_ranks >= 0

    def to_candidates(self) -> Candidates:
        """Plain ``Candidates`` (fused scores), source ``"merged"``."""
        return Candidates(self.item_ids, self.scores, source="merged")

    def features(self) -> dict[str, np.ndarray]:
        """Ranker features, each [batch, k]: ``<source>_score`` (NaN if absent), ``_rank`` (-1), ``_proposed``."""
        out: dict[str, np.ndarray] = {"fused_score": self.scores}
        for j, name in enumerate(self.sources):
            out[f"{name}_score"] = self.source_scores[:, :, j]
            out[f"{name}_rank"] = self.source_ranks[:, :, j]
            out[f"{name}_proposed"] = self.source_ranks[:, :, j] >= 0
        out["n_sources"] = self.proposed_by.sum(axis=2)
        return out


def check_merge_inputs(candidates: Sequence[Candidates], config: MergeConfig,
                       caller: str) -> tuple[tuple[str, ...], int]:
    """The source names and the row count of lists to merge; ``ValueError`` when they cannot be merged."""
    if not candidates:
        raise ValueError(f"{caller} needs at least one Candidates")
    names = tuple(c.source for c in candidates)
    if len(set(names)) != len(names):
        raise ValueError(f"source names must be distinct, got {names}")
    unknown = (set(config.quotas) | set(config.weights)) - set(names)
    if unknown:
        raise ValueError(f"quotas/weights name sources not given: {sorted(unknown)}")
    batch = candidates[0].item_ids.shape[0]
    if any(c.item_ids.shape[0] != batch for c in candidates):
        raise ValueError("all Candidates must have the same number of rows (users)")
    return names, batch


def merge_candidates(candidates: Sequence[Candidates], config: MergeConfig | None = None) -> MergedCandidates:
    """Union of the sources' lists per user, de-duplicated, top-``k`` by (in quota, fused score).

    fused(u, i) = Σ_s w_s / (rrf_k + rank_s(u, i) + 1) over the sources s that proposed i
    (reciprocal-rank fusion, Cormack et al. 2009: ranks, not raw scores, so scales need not agree).
    An item is *in quota* when some source s ranks it below ``quotas[s]``; in-quota items come first.
    Vectorised: one sort over (user, item, column) keys, one over (user, in quota, fused), no per-user loops.
    """
    cfg = config or MergeConfig()
    names, batch = check_merge_inputs(candidates, cfg, "merge_candidates")
    slots = _Slots.of(tuple(c.k for c in candidates), tuple(cfg.weights.get(n, 1.0) for n in names),
                      tuple(cfg.quotas.get(n, 0) for n in names), cfg.rrf_k)
    rows, cols, items, keys = _entries_by_user_item(np.concatenate([c.item_ids for c in candidates], axis=1))
    first = np.empty(len(keys), bool)
    first[:1] = True
    np.not_equal(keys[1:], keys[:-1], out=first[1:])
    group = np.cumsum(first) - 1
    n_unique = len(keys) and int(group[-1]) + 1
    fused = np.bincount(group, weights=slots.fused[cols], minlength=n_unique)
    in_quota = np.bincount(group, weights=slots.in_quota[cols], minlength=n_unique) > 0
    u_rows, u_items = rows[first], items[first]
    top = _ranked(u_rows, in_quota, fused)
    u_rows = u_rows[top]
    slot = np.arange(n_unique) - np.searchsorted(u_rows, np.arange(batch))[u_rows]
    fits = slot < cfg.k
    top, r, slot = top[fits], u_rows[fits], slot[fits]
    out_items = np.full((batch, cfg.k), PAD_ITEM, np.int64)
    out_scores = np.full((batch, cfg.k), -np.inf, np.float32)
    at = r * cfg.k + slot  # flat [batch, k] positions: one index array, numpy's fast path
    out_items.ravel()[at] = u_items[top]
    out_scores.ravel()[at] = fused[top]
    out_src_scores, out_src_ranks = _attribution(candidates, slots, (rows, cols, group), top, at, (batch, cfg.k))
    return MergedCandidates(out_items, out_scores, names, out_src_scores, out_src_ranks)


def _entries_by_user_item(items: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(row, column, item, (row, item) key) of the non-pad entries of ``items`` [batch, width], sorted by (row,
    item, column).

    Within one (user, item) the columns run in (source, rank) order, as a source-by-source concatenation lists
    them: the float64 sums of the merge add in that order and a source's first entry holds its best rank.
    """
    batch, width = items.shape
    flat = np.flatnonzero(items >= 0)
    values = items.ravel()[flat].astype(np.int64)
    rows, cols = np.divmod(flat, width)
    n_items = int(values.max(initial=0)) + 1
    if batch * n_items * width >= 1 << 62:  # keys would overflow: a stable argsort of (row, item) instead
        cell = rows * n_items + values
        order = np.argsort(cell, kind="stable")
        return rows[order], cols[order], values[order], cell[order]
    cell, cols = np.divmod(np.sort((rows * n_items + values) * width + cols), width)  # distinct keys
    rows, values = np.divmod(cell, n_items)
    return rows, cols, values, cell


def _ranked(rows: np.ndarray, in_quota: np.ndarray, fused: np.ndarray) -> np.ndarray:
    """``np.lexsort((-fused, ~in_quota, rows))``: by row, in-quota first, fused descending, then position; one sort
    of int64 keys, the fused score replaced by its dense rank (equal scores, equal ranks)."""
    n = len(fused)
    if n == 0 or (int(rows[-1]) + 1) * 2 * n * n >= 1 << 62:
        return stable_lexsort((-fused, ~in_quota, rows))
    by_score = np.argsort(-fused)  # any order among equal scores: they get one rank
    steps = np.empty(n, np.int64)
    steps[0] = 0
    np.not_equal(fused[by_score[1:]], fused[by_score[:-1]], out=steps[1:])
    place = np.empty(n, np.int64)
    place[by_score] = np.cumsum(steps)
    return np.sort(((rows * 2 + ~in_quota) * n + place) * n + np.arange(n)) % n


@dataclass(frozen=True)
class _Slots:
    """Per column of the sources' lists laid side by side: its source, rank, fused share and quota flag."""

    source: np.ndarray
    rank: np.ndarray
    fused: np.ndarray  # w_s / (rrf_k + rank + 1), float64
    in_quota: np.ndarray  # rank < quotas[s]

    @staticmethod
    @functools.lru_cache(maxsize=64)
    def of(widths: tuple[int, ...], weights: tuple[float, ...], quotas: tuple[int, ...], rrf_k: float) -> _Slots:
        """The columns of lists ``widths`` wide laid side by side (cached: the same few layouts every request)."""
        source = np.repeat(np.arange(len(widths)), widths)
        rank = np.concatenate([np.arange(w) for w in widths])
        fused = np.asarray(weights, np.float64)[source] / (rrf_k + rank + 1.0)
        slots = _Slots(source, rank, fused, rank < np.asarray(quotas, np.int64)[source])
        for array in (slots.source, slots.rank, slots.fused, slots.in_quota):
            array.flags.writeable = False
        return slots


def _attribution(candidates: Sequence[Candidates], slots: _Slots, entries: tuple[np.ndarray, np.ndarray, np.ndarray],
                 top: np.ndarray, at: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """[batch, k, n_sources] raw scores (NaN) and ranks (-1) of the kept groups ``top``, written at the flat
    [batch, k] positions ``at``.

    ``entries`` (row, column, group) are sorted by group then (source, rank): a group's first entry from a source
    holds that source's best rank for the item.
    """
    rows, cols, group = entries
    n_src = len(candidates)
    src = slots.source[cols]
    best = np.empty(len(cols), bool)
    best[:1] = True
    np.not_equal(group[1:] * n_src + src[1:], group[:-1] * n_src + src[:-1], out=best[1:])
    place = np.full(len(group) and int(group[-1]) + 1, -1, np.int64)
    place[top] = np.arange(len(top))  # kept group → its place in ``at``
    hit = best & (place[group] >= 0)
    kept = place[group[hit]]
    cell = at[kept] * n_src + src[hit]
    raw = np.concatenate([c.scores for c in candidates], axis=1)
    out_scores = np.full((*shape, n_src), np.nan, np.float32)
    out_ranks = np.full((*shape, n_src), -1, np.int32)
    out_scores.ravel()[cell] = raw.ravel()[rows[hit] * raw.shape[1] + cols[hit]]
    out_ranks.ravel()[cell] = slots.rank[cols[hit]]
    return out_scores, out_ranks


def equal_quotas(names: Sequence[str], k: int) -> dict[str, int]:
    """Split ``k`` slots evenly across sources (the first ones get the remainder)."""
    base, extra = divmod(k, len(names))
    return {name: base + (1 if i < extra else 0) for i, name in enumerate(names)}


def merge_sources_config(names: Sequence[str], k: int, weights: Mapping[str, float] | None = None) -> MergeConfig:
    """A merge config giving every source an equal quota of ``k``."""
    return MergeConfig(k=k, quotas=equal_quotas(names, k), weights=dict(weights or {}))


def merge_rows(candidates: Sequence[Candidates], config: MergeConfig, device: torch.device | str | None = None
               ) -> MergedCandidates:
    """:func:`~rankstack.retrieval.merge.merge_candidates` row by row in torch (one sort per row, on ``device``):
    the same merged lists, fused scores and attribution, ties broken alike (lower item id first); for large
    batches, where the NumPy merge's global sorts dominate the funnel.
    """
    names, batch = check_merge_inputs(candidates, config, "merge_rows")
    dev = resolve_device(device)
    n_src, k = len(candidates), config.k
    items = torch.cat([torch.as_tensor(c.item_ids, dtype=torch.int64) for c in candidates], 1).to(dev)
    raw = torch.cat([torch.as_tensor(c.scores, dtype=torch.float32) for c in candidates], 1).to(dev)
    ranks = torch.cat([torch.arange(c.k, device=dev) for c in candidates]).expand(batch, -1)
    src = torch.cat([torch.full((c.k,), j, device=dev) for j, c in enumerate(candidates)]).expand(batch, -1)
    weights = torch.tensor([config.weights.get(n, 1.0) for n in names], dtype=torch.float64, device=dev)
    quotas = torch.tensor([config.quotas.get(n, 0) for n in names], dtype=torch.int64, device=dev)
    valid = items >= 0
    big = int(items.max()) + 1 if items.numel() else 1
    # stable sort by item: entries of one item stay in (source, rank) order, padding goes last
    keyed, order = torch.sort(torch.where(valid, items, big), dim=1, stable=True)
    ranks, src, raw, valid = ranks.gather(1, order), src.gather(1, order), raw.gather(1, order), valid.gather(1, order)
    first = torch.ones_like(valid)
    first[:, 1:] = keyed[:, 1:] != keyed[:, :-1]
    group = first.long().cumsum(1) - 1  # [B, L] group (distinct item) of each entry, in item order
    width = items.shape[1]
    contrib = torch.where(valid, weights[src] / (config.rrf_k + ranks.double() + 1.0), 0.0)
    fused = torch.zeros(batch, width, dtype=torch.float64, device=dev).scatter_add_(1, group, contrib)
    in_quota = torch.zeros(batch, width, dtype=torch.int64, device=dev).scatter_reduce_(
        1, group, (valid & (ranks < quotas[src])).long(), "amax")
    live = torch.zeros(batch, width, dtype=torch.bool, device=dev).scatter_(1, group, valid)
    group_item = torch.full((batch, width), PAD_ITEM, dtype=torch.int64, device=dev).scatter_(
        1, group, torch.where(valid, keyed, PAD_ITEM))
    # per (group, source): the best (lowest) rank and its raw score
    cell = group * n_src + src
    best = torch.full((batch, width * n_src), width, dtype=torch.int64, device=dev).scatter_reduce_(
        1, cell, torch.where(valid, ranks, width), "amin")
    hit = valid & (best.gather(1, cell) == ranks)
    dump = width * n_src  # one spare column takes the writes of entries that are not their cell's best
    cell_score = torch.full((batch, dump + 1), float("nan"), device=dev).scatter_(
        1, torch.where(hit, cell, dump), raw)
    # order: in quota first, then fused score, then item id (stable sorts, last key first)
    fused = torch.where(live, fused, float("-inf"))
    by_fused = torch.sort(fused, dim=1, descending=True, stable=True).indices
    by_quota = torch.sort(torch.where(live, in_quota, -1).gather(1, by_fused), dim=1, descending=True,
                          stable=True).indices
    top = by_fused.gather(1, by_quota)[:, :k]
    kk = top.shape[1]
    out_items = group_item.gather(1, top)
    out_scores = fused.gather(1, top).float()
    cells = (top.unsqueeze(2) * n_src + torch.arange(n_src, device=dev)).reshape(batch, -1)
    out_ranks = best.gather(1, cells).reshape(batch, kk, n_src)
    out_src_scores = cell_score.gather(1, cells).reshape(batch, kk, n_src)
    proposed = out_ranks < width
    out_ranks = torch.where(proposed, out_ranks, -1).int()
    out_src_scores = torch.where(proposed, out_src_scores, float("nan"))
    pad = k - kk

    def cpu(t: torch.Tensor, fill: float) -> np.ndarray:
        arr = t.cpu().numpy()
        if pad:
            arr = np.concatenate([arr, np.full((batch, pad, *arr.shape[2:]), fill, arr.dtype)], axis=1)
        return arr

    return MergedCandidates(cpu(out_items, PAD_ITEM), cpu(out_scores, -np.inf), names,
                            cpu(out_src_scores, np.nan), cpu(out_ranks, -1))
