"""Most-popular baseline: every user gets the items with the most training interactions."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from rankstack.candidates import PAD_ITEM, Candidates
from rankstack.data.dataset import Dataset
from rankstack.retrieval.source import CandidateSource, SourceConfig


class PopularConfig(SourceConfig):
    """``by="users"`` counts distinct users per item; ``by="events"`` counts weighted events."""

    by: Literal["users", "events"] = "users"


class MostPopular(CandidateSource):
    """Scores item i by its popularity in training, the same for every user."""

    name = "popular"
    config_class = PopularConfig
    config: PopularConfig

    def fit(self, dataset: Dataset) -> MostPopular:
        """Count item popularity."""
        binary = self.config.by == "users"
        self.train_ = dataset.interaction_matrix(binary=True)
        counts_matrix = self.train_ if binary else dataset.interaction_matrix(binary=False)
        self.item_counts_ = torch.from_numpy(np.asarray(counts_matrix.sum(axis=0)).ravel().astype(np.float32))
        return self

    def score(self, user_ids: np.ndarray) -> torch.Tensor:
        """Popularity of every item, repeated per user."""
        self._require_fitted()
        return self.item_counts_.unsqueeze(0).expand(len(user_ids), -1)

    def popularity_order(self) -> tuple[np.ndarray, np.ndarray]:
        """Item ids from most to least popular (ties: lower id first) and each item's place in that order."""
        self._require_fitted()
        cached: tuple[torch.Tensor, np.ndarray, np.ndarray] | None = getattr(self, "_order", None)
        if cached is None or cached[0] is not self.item_counts_:  # computed once per fit or load
            order = np.argsort(-self.item_counts_.numpy(), kind="stable").astype(np.int64)
            place = np.empty_like(order)
            place[order] = np.arange(len(order))
            cached = (self.item_counts_, order, place)
            self._order = cached
        return cached[1], cached[2]

    def retrieve(self, user_ids: np.ndarray, k: int, *, exclude_seen: bool = True) -> Candidates:
        """The ``k`` most popular items per user (minus the user's training items), without scoring the catalog."""
        train = self._require_fitted()
        (order, place), counts = self.popularity_order(), self.item_counts_.numpy()
        user_ids = np.asarray(user_ids, dtype=np.int64)
        ids = np.full((len(user_ids), k), PAD_ITEM, dtype=np.int64)
        for row, user in enumerate(user_ids.tolist()):
            n_seen = int(train.indptr[user + 1] - train.indptr[user]) if exclude_seen else 0
            top = order[: k + n_seen]
            if n_seen:  # drop the seen items among the first k + n_seen by their place in the order
                keep = np.ones(len(top), dtype=bool)
                at = place[train.indices[train.indptr[user]: train.indptr[user + 1]]]
                keep[at[at < len(top)]] = False
                top = top[keep]
            ids[row, : min(k, len(top))] = top[:k]
        scores = np.where(ids >= 0, counts[np.maximum(ids, 0)], -np.inf).astype(np.float32)
        return Candidates(ids, scores, source=self.name)
