"""Features of merged candidates for a learned ranker: one code path for offline training rows and online requests.

Both read a ``RankBatch`` (what the pipeline hands its ranker) and ``ItemStats`` (counts over the events the
sources were fitted on: the artifact's at serving, a window's in training), so a candidate gets the same values
offline and online. Per candidate [B, C] → one row of :data:`feature_names`:

    score_<s>, rank_<s>, proposed_<s>   each source's retrieval score (NaN if it did not propose the item), its
                                        1-based rank among the row's candidates it proposed, and a 0/1 flag
    n_proposed, merged_rank             how many sources proposed it; its slot in the fused retrieval order
    pop_all, pop_recent, pop_trend      log1p event count (all, last ``recent_days``), recent share ÷ all share
    item_age_days                       days from the item's first event to the end of the statistics window
    user_events, history_len            the user's event count in the window; the request history's length
    cooc_sum, cooc_max, cooc_cos        co-occurrence counts of the candidate with the history's last N items:
                                        sum, max, and sum_h c(h,i) / sqrt(n_h n_i) (cosine)
    genre_match                         share of the last N items sharing an attribute value with the candidate
    cooc_cos_last1                      the cosine co-occurrence with the history's most recent item alone
    trans_last1, trans_last5            order-aware: P(i follows h) = t(h, i) / t(h, ·), with t(h, i) the times i
                                        came within ``ItemStats.transition_gap`` events after h in a user's
                                        time-ordered history; for the last item, and averaged over the last 5
    seq_score                           the sequential model's score of the candidate given the history
    emb_max, emb_mean                   cosine of the candidate's embedding (a source's item vectors) with the
                                        last N history items': max and mean
    since_last_days                     (recency) days from the user's latest positive event (the statistics'
                                        window, or a fresh one from the state store) to the request's time;
                                        NaN when either is unknown
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp

from rankstack.data.dataset import Dataset
from rankstack.io import atomic_write
from rankstack.ranking.history_features import attribute_masks, history_block
from rankstack.ranking.ranker import RankBatch

DAY = 86_400.0
ITEM_FEATURES = ("pop_all", "pop_recent", "pop_trend", "item_age_days")
USER_FEATURES = ("user_events", "history_len")
HISTORY_FEATURES = ("cooc_sum", "cooc_max", "cooc_cos", "genre_match")
RECENT_FEATURES = ("cooc_cos_last1", "trans_last1", "trans_last5")
EMBEDDING_FEATURES = ("emb_max", "emb_mean")
RECENCY_FEATURES = ("since_last_days",)


def feature_names(sources: Sequence[str], sequential: bool, embedding: bool = False,
                  recency: bool = False) -> list[str]:
    """The column names of :func:`candidate_features`, in order."""
    per_source = [f"{kind}_{s}" for s in sources for kind in ("score", "rank", "proposed")]
    tail = (["seq_score"] if sequential else []) + (list(EMBEDDING_FEATURES) if embedding else []) + \
        (list(RECENCY_FEATURES) if recency else [])
    return [*per_source, "n_proposed", "merged_rank", *ITEM_FEATURES, *USER_FEATURES, *HISTORY_FEATURES,
            *RECENT_FEATURES, *tail]


@dataclass
class ItemStats:
    """Item and user counts over one window of events: all-time and recent popularity, first-seen age, user
    activity and each user's latest event time (seconds; NaN: none), item co-occurrence (top ``neighbors`` per
    item), a 0/1 item × attribute-value matrix, and ordered transitions h → i (top ``neighbors`` per item) with
    each item's total outgoing count."""

    pop_all: np.ndarray
    pop_recent: np.ndarray
    age_days: np.ndarray
    user_events: np.ndarray
    cooc: sp.csr_matrix
    attributes: sp.csr_matrix
    recent_share: float
    trans: sp.csr_matrix
    trans_out: np.ndarray
    user_last: np.ndarray | None = None  # None: statistics saved before it existed (the recency feature is NaN)

    @cached_property
    def attribute_masks(self) -> np.ndarray | None:
        """Each item's attribute values as bits [n_items, words] (None for a wide vocabulary), computed once."""
        return attribute_masks(self.attributes)

    @classmethod
    def from_dataset(cls, data: Dataset, *, recent_days: float = 30.0, neighbors: int = 200,
                     attribute: str | None = "genres", transition_gap: int = 3) -> ItemStats:
        """Counts over ``data``'s positive events; "recent" = the last ``recent_days`` before its latest event;
        a transition h → i counts each time i comes 1..``transition_gap`` events after h in a user's history."""
        ev = data.positive_events()
        items = ev.get_column("item_id").to_numpy().astype(np.int64)
        users = ev.get_column("user_id").to_numpy().astype(np.int64)
        times = _seconds(ev)
        end = float(times.max()) if len(times) else 0.0
        start = float(times.min()) if len(times) else 0.0
        recent = times >= end - recent_days * DAY
        pop_all = np.bincount(items, minlength=data.n_items).astype(np.float64)
        pop_recent = np.bincount(items[recent], minlength=data.n_items).astype(np.float64)
        first = np.full(data.n_items, np.nan)
        if len(items):
            order = np.lexsort((times, items))
            heads = np.flatnonzero(np.r_[True, np.diff(items[order]) != 0])
            first[items[order][heads]] = times[order][heads]
        share = min(1.0, recent_days * DAY / max(end - start, DAY))
        trans = _transitions(data.sequences(), data.n_items, transition_gap)
        trans_out = np.asarray(trans.sum(axis=1), dtype=np.float64).ravel()
        return cls(pop_all, pop_recent, (end - first) / DAY, np.bincount(users, minlength=data.n_users)
                   .astype(np.float64), _cooccurrence(data.interaction_matrix(), neighbors),
                   _attribute_matrix(data, attribute), share, _top_per_row(trans, neighbors), trans_out,
                   latest_times(users, times, data.n_users, timed="timestamp" in ev.columns))

    def save(self, path: Path) -> None:
        """Write the statistics as one safetensors file (numpy arrays, nothing pickled)."""
        from safetensors.numpy import save_file

        tensors = {"pop_all": self.pop_all, "pop_recent": self.pop_recent, "age_days": self.age_days,
                   "user_events": self.user_events, "recent_share": np.array([self.recent_share]),
                   "trans_out": self.trans_out}
        if self.user_last is not None:
            tensors["user_last"] = self.user_last
        for name, mat in (("cooc", self.cooc), ("attributes", self.attributes), ("trans", self.trans)):
            tensors |= {f"{name}_indptr": mat.indptr.astype(np.int64), f"{name}_indices": mat.indices.astype(np.int64),
                        f"{name}_data": mat.data.astype(np.float32), f"{name}_shape": np.array(mat.shape, np.int64)}
        with atomic_write(path) as tmp:
            save_file(tensors, str(tmp))

    @classmethod
    def load(cls, path: Path) -> ItemStats:
        """The statistics :meth:`save` wrote."""
        from safetensors.numpy import load_file

        t = load_file(str(path))

        def csr(name: str) -> sp.csr_matrix:
            shape = tuple(int(x) for x in t[f"{name}_shape"])
            return sp.csr_matrix((t[f"{name}_data"], t[f"{name}_indices"], t[f"{name}_indptr"]), shape=shape)

        return cls(t["pop_all"], t["pop_recent"], t["age_days"], t["user_events"], csr("cooc"), csr("attributes"),
                   float(t["recent_share"][0]), csr("trans"), t["trans_out"], t.get("user_last"))

    def last_times(self, user_ids: np.ndarray) -> np.ndarray:
        """Each user's latest event time in the window (seconds; NaN: unknown user, no event or no times)."""
        users = np.asarray(user_ids, dtype=np.int64)
        if self.user_last is None:
            return np.full(users.shape, np.nan)
        known = (users >= 0) & (users < len(self.user_last))
        return np.where(known, self.user_last[np.where(known, users, 0)], np.nan)


def latest_times(users: np.ndarray, times: np.ndarray, n_users: int, *, timed: bool = True) -> np.ndarray:
    """Per user the largest of ``times`` over its events [n_users] (NaN: no event, or ``timed`` False)."""
    out = np.full(n_users, np.nan)
    if timed and len(users):
        order = np.argsort(times, kind="stable")
        out[users[order]] = times[order]  # later writes win: the latest time per user
    return out


def request_times(events: pl.DataFrame, n_users: int) -> np.ndarray:
    """Per internal user id the time of its earliest event in ``events`` (seconds; NaN: no event or no
    timestamps): the request time of an offline row whose labels are those events."""
    users = events.get_column("user_id").to_numpy().astype(np.int64)
    return -latest_times(users, -_seconds(events), n_users, timed="timestamp" in events.columns)


def _seconds(events: pl.DataFrame) -> np.ndarray:
    """Event times in seconds (datetimes) or as given (numeric positions); zeros without a timestamp column."""
    if "timestamp" not in events.columns:
        return np.zeros(events.height)
    col = events.get_column("timestamp")
    if col.dtype.is_temporal():
        return col.dt.epoch("ms").to_numpy().astype(np.float64) / 1000.0
    return col.cast(pl.Float64).fill_null(0.0).to_numpy()


def _cooccurrence(matrix: sp.csr_matrix, neighbors: int) -> sp.csr_matrix:
    """Item × item counts of users holding both (diagonal dropped), each row cut to its ``neighbors`` largest."""
    x = sp.csr_matrix(matrix, dtype=np.float32)
    x.data[:] = 1.0
    co = (x.T @ x).tocsr()
    co.setdiag(0.0)
    co.eliminate_zeros()
    return _top_per_row(co, neighbors)


def _transitions(sequences: Sequence[np.ndarray], n_items: int, gap: int) -> sp.csr_matrix:
    """Item × item counts of i following h within ``gap`` events of one user's history (h ≠ i)."""
    heads, tails = [], []
    for seq in sequences:
        for g in range(1, gap + 1):
            if len(seq) > g:
                heads.append(seq[:-g])
                tails.append(seq[g:])
    if not heads:
        return sp.csr_matrix((n_items, n_items), dtype=np.float32)
    h, t = np.concatenate(heads), np.concatenate(tails)
    keep = h != t
    out = sp.csr_matrix((np.ones(int(keep.sum()), np.float32), (h[keep], t[keep])), shape=(n_items, n_items))
    out.sum_duplicates()
    return out


def _top_per_row(co: sp.csr_matrix, neighbors: int) -> sp.csr_matrix:
    """``co`` with each row cut to its ``neighbors`` largest entries."""
    co = co.tocsr()
    rows, cols, vals = [], [], []
    for i in range(co.shape[0]):
        at = slice(co.indptr[i], co.indptr[i + 1])
        idx, val = co.indices[at], co.data[at]
        if len(val) > neighbors:
            keep = np.argpartition(-val, neighbors - 1)[:neighbors]
            idx, val = idx[keep], val[keep]
        rows.append(np.full(len(idx), i))
        cols.append(idx)
        vals.append(val)
    shape = co.shape
    if not rows:
        return sp.csr_matrix(shape, dtype=np.float32)
    out = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=shape,
                        dtype=np.float32)
    out.sort_indices()
    return out


def _attribute_matrix(data: Dataset, attribute: str | None) -> sp.csr_matrix:
    """0/1 item × value matrix of a (list or string, ``|``-separated) item attribute; empty when there is none."""
    feats = data.item_features
    if attribute is None or feats is None or attribute not in feats.columns:
        return sp.csr_matrix((data.n_items, 0), dtype=np.float32)
    col = feats.get_column(attribute)
    values = col.to_list() if col.dtype == pl.List(pl.String) else [
        None if v is None else str(v).split("|") for v in col.to_list()]
    ids = feats.get_column("item_id").to_numpy().astype(np.int64)
    vocab: dict[str, int] = {}
    rows, cols = [], []
    for item, vals in zip(ids, values, strict=True):
        for v in vals or []:
            if v is not None and item >= 0:
                rows.append(int(item))
                cols.append(vocab.setdefault(str(v), len(vocab)))
    return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(data.n_items, len(vocab)))


def _source_blocks(batch: RankBatch, sources: Sequence[str], valid: np.ndarray) -> list[np.ndarray]:
    """Per source: score (NaN if not proposed), rank among the row's proposed items (1-based), proposed 0/1."""
    out = []
    for name in sources:
        scores = batch.source_scores.get(name)
        if scores is None:
            scores = np.full(valid.shape, np.nan)
        scores = np.where(valid, scores, np.nan)
        proposed = ~np.isnan(scores)
        keyed = np.where(proposed, scores, -np.inf)
        order = np.argsort(-keyed, axis=1, kind="stable")
        ranks = np.empty(valid.shape)
        np.put_along_axis(ranks, order, np.arange(1, valid.shape[1] + 1, dtype=np.float64)[None, :], axis=1)
        out += [scores, np.where(proposed, ranks, np.nan), proposed.astype(np.float64)]
    return out


def _embedding_block(batch: RankBatch, vectors: np.ndarray, last_n: int, valid: np.ndarray) -> list[np.ndarray]:
    """Max and mean cosine of each candidate's row of ``vectors`` (unit rows) with the last ``last_n`` items'."""
    shape = valid.shape
    best, mean = np.zeros(shape), np.zeros(shape)
    for row in range(shape[0]):
        hist = batch.histories[row][-last_n:] if row < len(batch.histories) else np.zeros(0, np.int64)
        hist = hist[(hist >= 0) & (hist < len(vectors))]
        if not len(hist):
            continue
        cand = np.where(valid[row], batch.item_ids[row], 0)
        sims = vectors[hist] @ vectors[cand].T  # [N, C]
        best[row], mean[row] = sims.max(axis=0), sims.mean(axis=0)
    return [best, mean]


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """``vectors`` [n, d] scaled to unit length per row (zero rows stay zero), float64."""
    v = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.where(norms > 0, norms, 1.0)


def since_last_days(batch: RankBatch, stats: ItemStats) -> np.ndarray:
    """Per row: (request time − the user's latest event time) / 1 day, the latest of the statistics' window and the
    row's fresh events; NaN where the request's time or every event time is unknown; never below 0."""
    rows = len(batch.item_ids)
    latest = stats.last_times(batch.user_ids)
    if batch.fresh_times is not None:
        latest = np.fmax(latest, np.asarray(batch.fresh_times, np.float64))
    times = np.full(rows, np.nan) if batch.times is None else np.asarray(batch.times, np.float64)
    return np.maximum((times - latest) / DAY, 0.0)


def candidate_features(batch: RankBatch, stats: ItemStats, sources: Sequence[str], *, last_n: int = 20,
                       seq_scores: np.ndarray | None = None, item_vectors: np.ndarray | None = None,
                       recency: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(features [n valid candidates, F] float32 in :func:`feature_names` order, valid mask [B, C]).

    Rows are the valid candidates (item id >= 0) in row-major order; ``seq_scores`` [B, C] is the sequential
    model's score and ``item_vectors`` [items, d] unit item embeddings (each one's columns are present exactly
    when it is given); ``recency`` adds :func:`since_last_days`.
    """
    ids = batch.item_ids
    valid = ids >= 0
    safe = np.where(valid, ids, 0)
    n_items = len(stats.pop_all)
    known_item = valid & (ids < n_items)
    safe = np.where(known_item, safe, 0)
    blocks = _source_blocks(batch, sources, valid)
    proposed = np.stack(blocks[2::3]).sum(axis=0) if sources else np.zeros(ids.shape)
    merged_rank = np.broadcast_to(np.arange(ids.shape[1], dtype=np.float64), ids.shape)
    pop_all, pop_recent = stats.pop_all[safe], stats.pop_recent[safe]
    trend = (pop_recent + 1.0) / (pop_all * stats.recent_share + 1.0)
    users = np.asarray(batch.user_ids, dtype=np.int64)
    known_user = (users >= 0) & (users < len(stats.user_events))
    user_events = np.where(known_user, stats.user_events[np.where(known_user, users, 0)], 0.0)
    hist_len = np.array([len(batch.histories[r]) if r < len(batch.histories) else 0 for r in range(len(ids))],
                        np.float64)
    columns = [*blocks, proposed, merged_rank, np.log1p(pop_all), np.log1p(pop_recent), trend,
               stats.age_days[safe], np.broadcast_to(user_events[:, None], ids.shape),
               np.broadcast_to(hist_len[:, None], ids.shape), *history_block(batch, stats, last_n, known_item)]
    if seq_scores is not None:
        columns.append(seq_scores)
    if item_vectors is not None:
        columns += _embedding_block(batch, item_vectors, last_n, known_item & (ids < len(item_vectors)))
    if recency:
        columns.append(np.broadcast_to(since_last_days(batch, stats)[:, None], ids.shape))
    matrix = np.stack(columns, axis=-1, dtype=np.float32)[valid]  # [B, C, F] → the valid rows, row-major
    return matrix, valid
