"""Most-popular baseline: every user gets the items with the most training interactions."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from rankstack.data.dataset import Dataset
from rankstack.retrieval.base import CandidateSource, SourceConfig


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
