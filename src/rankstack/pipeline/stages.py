"""The pipeline's array stages over candidate tables [batch, C] (internal ids, -1 pads): retrieval, the
popularity fallback, eligibility with backfill and the value blend (the ranker is a ``rankstack.ranking.Ranker``)."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from rankstack.candidates import PAD_ITEM, normalize_relevance, pads_trail, take_rows
from rankstack.pipeline.config import PipelineConfig, ValueStage
from rankstack.reranking.catalog import ItemCatalog
from rankstack.retrieval.merge import MergeConfig, merge_candidates
from rankstack.retrieval.source import Retriever


@dataclass(frozen=True)
class CandidateTable:
    """Candidates per row and what is known about each: ``retrieval`` (fused) and per-source scores."""

    item_ids: np.ndarray
    retrieval: np.ndarray
    source_scores: dict[str, np.ndarray]

    def take(self, order: np.ndarray) -> CandidateTable:
        """Rows reordered column-wise by ``order`` [B, C]."""
        return CandidateTable(take_rows(self.item_ids, order), take_rows(self.retrieval, order),
                              {n: take_rows(s, order) for n, s in self.source_scores.items()})


def retrieve(sources: Mapping[str, Retriever], config: PipelineConfig,
             user_ids: np.ndarray) -> tuple[CandidateTable, list[str]]:
    """Each source's top-k for known users (directly or from its vector index), merged; returns the table and
    the sources that failed."""
    stages = {s.name: s for s in config.sources}
    lists, failed = [], []
    for name, source in sources.items():
        try:
            lists.append(source.retrieve(user_ids, stages[name].k))
        except Exception:
            failed.append(name)
    if not lists:
        raise RuntimeError(f"every candidate source failed: {failed}")
    names = {c.source for c in lists}
    merge = _merge_config(config.merge.k, config.merge.rrf_k,
                          tuple((n, s.quota, s.weight) for n, s in stages.items() if n in names))
    merged = merge_candidates(lists, merge)
    table = CandidateTable(merged.item_ids, merged.scores.astype(np.float64),
                           {n: merged.source_scores[:, :, j].astype(np.float64) for j, n in enumerate(merged.sources)})
    return table, failed


@functools.lru_cache(maxsize=32)
def _merge_config(k: int, rrf_k: float, sources: tuple[tuple[str, int, float], ...]) -> MergeConfig:
    """The merge settings for these (name, quota, weight) sources, validated once rather than per request."""
    return MergeConfig(k=k, rrf_k=rrf_k, quotas={n: q for n, q, _ in sources if q},
                       weights={n: w for n, _, w in sources})


def popularity(order: np.ndarray, seen: sp.csr_matrix | None, user_ids: np.ndarray, width: int,
               rrf_k: float, source_names: Sequence[str]) -> CandidateTable:
    """The most popular items not seen in training (unknown users: -1 → nothing seen), scored 1/(rrf_k+rank+1)."""
    rows = len(user_ids)
    out = np.full((rows, width), PAD_ITEM, np.int64)
    for row, user in enumerate(user_ids):
        cand = order[: width + (0 if seen is None or user < 0 else int(seen.indptr[user + 1] - seen.indptr[user]))]
        if seen is not None and user >= 0:
            cand = cand[~np.isin(cand, seen.indices[seen.indptr[user]: seen.indptr[user + 1]])]
        cand = cand[:width]
        out[row, : len(cand)] = cand
    ranks = np.arange(width, dtype=np.float64)
    scores = np.where(out >= 0, 1.0 / (rrf_k + ranks + 1.0), -np.inf)
    return CandidateTable(out, scores, {n: np.full((rows, width), np.nan) for n in source_names})


def stack(tables: Sequence[tuple[np.ndarray, CandidateTable]], rows: int) -> CandidateTable:
    """One table from parts that each cover some rows (``(row indices, table)``), padded to a common width."""
    width = max(t.item_ids.shape[1] for _, t in tables)
    names = sorted({n for _, t in tables for n in t.source_scores})
    if len(tables) == 1 and _covers_in_order(*tables[0], rows):  # the common case: all rows from one part
        t = tables[0][1]
        return CandidateTable(t.item_ids, t.retrieval, {n: t.source_scores[n] for n in names})
    ids = np.full((rows, width), PAD_ITEM, np.int64)
    ret = np.full((rows, width), -np.inf)
    src = {n: np.full((rows, width), np.nan) for n in names}
    for index, t in tables:
        w = t.item_ids.shape[1]
        ids[index, :w], ret[index, :w] = t.item_ids, t.retrieval
        for n, s in t.source_scores.items():
            src[n][index, :w] = s
    return CandidateTable(ids, ret, src)


def _covers_in_order(index: np.ndarray, table: CandidateTable, rows: int) -> bool:
    """``table`` is row for row the whole stacked table already (rows 0…rows-1, the stacked dtypes)."""
    return (len(index) == rows and bool((np.asarray(index) == np.arange(rows)).all())
            and table.item_ids.dtype == np.int64 and table.retrieval.dtype == np.float64
            and all(s.dtype == np.float64 for s in table.source_scores.values()))


def eligible(table: CandidateTable, blocked: Sequence[np.ndarray],
             allowed: Sequence[np.ndarray | None]) -> CandidateTable:
    """Drop blocked and filtered-out candidates, moving each row's survivors to the front (order kept)."""
    ids = table.item_ids
    valid = ids >= 0
    bad = _blocked(ids, blocked)
    for row, allow in enumerate(allowed):
        if allow is not None:
            bad = np.zeros(ids.shape, dtype=bool) if bad is None else bad
            bad[row] |= ~allow[np.where(valid[row], ids[row], 0)]
    if bad is not None:
        bad &= valid
    if (bad is not None and bad.any()) or not pads_trail(valid):  # else: rows already compact
        ids = ids if bad is None else np.where(bad, PAD_ITEM, ids)
        table = CandidateTable(ids, table.retrieval, table.source_scores).take(
            np.argsort(ids < 0, axis=1, kind="stable"))
        valid = table.item_ids >= 0
    return CandidateTable(table.item_ids, np.where(valid, table.retrieval, -np.inf), dict(table.source_scores))


def _blocked(ids: np.ndarray, blocked: Sequence[np.ndarray]) -> np.ndarray | None:
    """Bool [B, C]: ``ids[b, c]`` is in ``blocked[b]`` (None: nothing is blocked); one search over sorted
    (row, item) keys for all rows."""
    counts = [len(b) for b in blocked]
    if not any(counts):
        return None
    items = np.concatenate(blocked).astype(np.int64)
    width = max(int(ids.max(initial=0)), int(items.max())) + 2  # +2: a pad (-1) maps to no key of any row
    keys = np.sort(np.repeat(np.arange(len(blocked), dtype=np.int64), counts) * width + items)
    cand = np.arange(len(ids), dtype=np.int64)[:, None] * width + ids
    at = np.minimum(np.searchsorted(keys, cand), len(keys) - 1)
    return keys[at] == cand


def backfill(table: CandidateTable, need: np.ndarray, order: np.ndarray, seen: sp.csr_matrix | None,
             user_ids: np.ndarray, blocked: Sequence[np.ndarray],
             allowed: Sequence[np.ndarray | None]) -> CandidateTable:
    """Rows with fewer than ``need`` candidates get popular eligible items appended (retrieval score -inf)."""
    counts = (table.item_ids >= 0).sum(axis=1)
    short = np.flatnonzero(counts < need)
    if len(short) == 0:
        return table
    width = max(table.item_ids.shape[1], int(need.max()))
    pad = width - table.item_ids.shape[1]
    ids = np.pad(table.item_ids, ((0, 0), (0, pad)), constant_values=PAD_ITEM)
    ret = np.pad(table.retrieval, ((0, 0), (0, pad)), constant_values=-np.inf)
    src = {n: np.pad(s, ((0, 0), (0, pad)), constant_values=np.nan) for n, s in table.source_scores.items()}
    for row in short.tolist():
        user, have = user_ids[row], ids[row][ids[row] >= 0]
        taken = np.concatenate([have, blocked[row]])
        if seen is not None and user >= 0:
            taken = np.concatenate([taken, seen.indices[seen.indptr[user]: seen.indptr[user + 1]]])
        cand = order[~np.isin(order, taken)]
        allow = allowed[row]
        if allow is not None:
            cand = cand[allow[cand]]
        extra = cand[: int(need[row]) - len(have)]
        ids[row, len(have): len(have) + len(extra)] = extra
    return CandidateTable(ids, ret, src)


def predictions(table: CandidateTable, ranker: np.ndarray | None, catalog: ItemCatalog | None, fields: set[str],
                heads: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Per-candidate predictions a value objective may read: ranker, retrieval, each source, the ranker's
    per-objective ``heads`` among ``fields`` (e.g. the multi-task ranker's click, conversion, cvr, revenue,
    payout), item attributes."""
    out: dict[str, np.ndarray] = {"retrieval": table.retrieval}
    out["ranker"] = table.retrieval if ranker is None else np.where(np.isnan(ranker), table.retrieval, ranker)
    for name, scores in table.source_scores.items():
        out[name] = np.where(np.isnan(scores), np.nanmin(scores, initial=0.0), scores)
    for name, values in (heads or {}).items():
        if name in fields:
            out[name] = np.nan_to_num(values, nan=0.0)
    if catalog is not None:
        for name in fields - set(out):
            if name in catalog.attributes and catalog.column(name).dtype.is_numeric():
                values = catalog.column(name).fill_null(0).to_numpy().astype(np.float64)
                out[name] = values[np.where(table.item_ids >= 0, table.item_ids, 0)]
    return out


def blend(stage: ValueStage, table: CandidateTable, preds: Mapping[str, np.ndarray]) -> np.ndarray:
    """Value of every candidate under the objective (each prediction min-max scaled per row if asked)."""
    used = {f: np.asarray(preds[f], np.float64) for f in stage.objective.fields if f in preds}
    if stage.normalize:
        used = {f: normalize_relevance(table.item_ids, v, "minmax") for f, v in used.items()}
    return np.where(table.item_ids >= 0, stage.objective.score(used), -np.inf)
