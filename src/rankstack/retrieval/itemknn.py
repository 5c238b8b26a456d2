"""Item-kNN: cosine similarity with shrinkage, keeping each item's top neighbours."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from pydantic import Field

from rankstack.candidates import PAD_ITEM, Candidates, rows_topk
from rankstack.data.dataset import Dataset
from rankstack.progress import new_progress
from rankstack.retrieval.source import CandidateSource, SourceConfig

_BLOCK_CELLS = 1 << 22  # users per retrieve block: at most this many dense [users, items] score cells
_SPARSE_SHARE = 0.05  # a user whose neighbour lists hold fewer entries than this share of the catalogue is scored
# on those entries alone (no dense row). The crossover, timed on the 41k-item serve_load artifact (one user per call,
# docs/benchmarks.md "#20, sixth session"): at < 2,000 entries 208 µs sparse vs 349 µs dense, at 2,000–5,000 488 vs
# 365 µs. On a 1M-item catalogue a dense row is 4 MB per user, so the share matters most there.


class ItemKNNConfig(SourceConfig):
    """``neighbors`` kept per item; ``shrink`` damps similarities of rarely co-occurring items."""

    neighbors: int = Field(200, ge=1)
    shrink: float = Field(10.0, ge=0.0)
    chunk_size: int = Field(2048, ge=1)


class ItemKNN(CandidateSource):
    """score(u, j) = Σ_{i ∈ I_u} s(i, j),  s(i, j) = |U_i ∩ U_j| / (√|U_i| · √|U_j| + shrink), i ≠ j.

    Only the ``neighbors`` largest s(·, j) are kept for each item j.
    """

    name = "itemknn"
    config_class = ItemKNNConfig
    config: ItemKNNConfig
    fresh_scores = True  # score() returns a new tensor each call: the evaluator may mask it in place

    def fit(self, dataset: Dataset) -> ItemKNN:
        """Compute the pruned item-item similarity matrix in column chunks."""
        x = dataset.interaction_matrix(binary=True)
        self.train_ = x
        n_items = x.shape[1]
        norms = np.sqrt(np.asarray(x.sum(axis=0)).ravel()).astype(np.float32)
        xt = x.T.tocsr()
        xc = x.tocsc()
        keep = min(self.config.neighbors, max(n_items - 1, 1))
        rows, cols, vals = [], [], []
        starts = range(0, n_items, self.config.chunk_size)
        with new_progress() as progress:
            task = progress.add_task("item-kNN similarities", total=len(starts))
            for start in starts:
                stop = min(start + self.config.chunk_size, n_items)
                co = torch.from_numpy((xt @ xc[:, start:stop]).toarray())
                denom = torch.from_numpy(np.outer(norms, norms[start:stop])) + self.config.shrink
                sim = co / denom.clamp_min(1e-12)
                sim[torch.arange(start, stop), torch.arange(stop - start)] = 0.0
                top_vals, top_idx = torch.topk(sim, keep, dim=0)
                mask = top_vals > 0
                col_ids = torch.arange(start, stop).expand_as(top_idx)
                rows.append(top_idx[mask].numpy())
                cols.append(col_ids[mask].numpy())
                vals.append(top_vals[mask].numpy())
                progress.advance(task)
        self.similarity_ = sp.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(n_items, n_items),
            dtype=np.float32,
        )
        return self

    def score(self, user_ids: np.ndarray) -> torch.Tensor:
        """Sum of similarities from the user's training items."""
        train = self._require_fitted()
        return torch.from_numpy((train[user_ids] @ self.similarity_).toarray())

    def retrieve(self, user_ids: np.ndarray, k: int, *, exclude_seen: bool = True) -> Candidates:
        """Top-``k`` items with a positive score (ties: lower item id), a block of users at a time; users with
        fewer such items get padded rows (-1), which the merge and the pipeline backfill."""
        train = self._require_fitted()
        n_users = train.shape[0]
        users = np.asarray(user_ids, dtype=np.int64).tolist()
        if users and (min(users) < -n_users or max(users) >= n_users):
            raise IndexError(f"user ids must lie in [0, {n_users}), got {min(users)}…{max(users)}")
        users = [u + n_users if u < 0 else u for u in users]  # negative ids count from the end, as in scipy
        block = max(1, _BLOCK_CELLS // max(train.shape[1], 1))
        parts = [self._retrieve_block(train, users[at: at + block], k, exclude_seen)
                 for at in range(0, max(len(users), 1), block)]
        if len(parts) == 1:
            return Candidates(*parts[0], source=self.name)
        return Candidates(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                          source=self.name)

    def _retrieve_block(self, train: sp.csr_matrix, users: list[int], k: int,
                        exclude_seen: bool) -> tuple[np.ndarray, np.ndarray]:
        """Top-k of ``users``' scores: a user with short neighbour lists on the entries they reach alone, the others
        on a dense row each (no sparse product, no scipy call); the same lists and float32 sums either way."""
        n_items = train.shape[1]
        dtype = np.result_type(train.dtype, self.similarity_.dtype)
        unit = self._unit_weights(train)
        out_ids = np.full((len(users), k), PAD_ITEM, dtype=np.int64)
        out_scores = np.full((len(users), k), -np.inf, dtype=np.float32)
        dense_rows: list[int] = []
        for row, user in enumerate(users):
            span = slice(int(train.indptr[user]), int(train.indptr[user + 1]))
            items = train.indices[span]
            reached = self.similarity_.indptr[items + 1] - self.similarity_.indptr[items]
            if int(reached.sum()) >= _SPARSE_SHARE * n_items:
                dense_rows.append(row)
                continue
            cols, values = self._neighbour_entries(items, None if unit else train.data[span])
            ids, inverse = np.unique(cols, return_inverse=True)
            scores = np.zeros(len(ids), dtype=dtype)
            np.add.at(scores, inverse, values)
            if exclude_seen:
                scores[np.isin(ids, items)] = 0
            scores = scores.astype(np.float32)  # as the dense rows: cast, then drop zeros
            keep = scores != 0
            ids, scores = ids[keep], scores[keep]
            if len(scores) > k:  # ties with the k-th value compete, so ties at the cut go by item id too
                near = scores >= np.partition(scores, len(scores) - k)[len(scores) - k]
                ids, scores = ids[near], scores[near]
            order = np.lexsort((ids, -scores))[:k]
            out_ids[row, : len(order)], out_scores[row, : len(order)] = ids[order], scores[order]
        if dense_rows:
            dense = np.zeros((len(dense_rows), n_items), dtype=dtype)
            for at, row in enumerate(dense_rows):
                span = slice(int(train.indptr[users[row]]), int(train.indptr[users[row] + 1]))
                items = train.indices[span]
                cols, values = self._neighbour_entries(items, None if unit else train.data[span])
                np.add.at(dense[at], cols, values)
                if exclude_seen:
                    dense[at, items] = 0
            out_ids[dense_rows], out_scores[dense_rows] = rows_topk(dense, k)
        return out_ids, out_scores

    def _unit_weights(self, train: sp.csr_matrix) -> bool:
        """Every stored interaction is 1 (binary training matrix): products need no multiplication (cached)."""
        cached: tuple[sp.csr_matrix, bool] | None = getattr(self, "_unit", None)
        if cached is None or cached[0] is not train:
            cached = (train, bool((train.data == 1).all()))
            self._unit = cached
        return cached[1]

    def _neighbour_entries(self, items: np.ndarray, weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(j, w_i · s(i, j)) over the stored s(i, j) of each of ``items`` in turn (w_i = 1 when ``weights`` is
        None): the order the sparse product ``x[u] @ similarity_`` sums them in, so float32 sums are equal."""
        sim = self.similarity_
        starts, ends = sim.indptr[items], sim.indptr[items + 1]
        spans = [slice(a, b) for a, b in zip(starts.tolist(), ends.tolist(), strict=True)]
        if not spans:
            return np.zeros(0, sim.indices.dtype), np.zeros(0, sim.data.dtype)
        values = np.concatenate([sim.data[s] for s in spans])
        if weights is not None:
            values = values * np.repeat(weights, ends - starts)
        return np.concatenate([sim.indices[s] for s in spans]), values
