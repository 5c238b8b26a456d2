"""``SequentialRanker``'s view of its model's user-state cache (what the serving metrics count)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from rankstack.ranking.sequential import SequentialRanker
from rankstack.sequential.state_cache import StateCache


class _Scorer:
    """Scores every candidate 0; keeps no states."""

    name = "scorer"

    def score_candidates(self, histories: Sequence[np.ndarray], candidates: np.ndarray) -> torch.Tensor:
        """Zeros [B, C]."""
        return torch.zeros(np.asarray(candidates).shape)


class _CachingScorer(_Scorer):
    """A scorer that can keep user states, as SASRec does."""

    name = "caching"

    def __init__(self) -> None:
        self.state_cache: StateCache | None = None

    def enable_state_cache(self, capacity: int) -> None:
        """A new cache of ``capacity`` states, or none for 0."""
        self.state_cache = StateCache(capacity) if capacity else None

    def user_states(self, histories: Sequence[np.ndarray], batch_size: int = 2048) -> Any:
        """Unused here."""
        raise NotImplementedError


def test_the_ranker_shows_the_cache_its_model_keeps() -> None:
    model = _CachingScorer()
    ranker = SequentialRanker(model)  # type: ignore[arg-type]
    assert ranker.state_cache is None
    ranker.keep_states(8)
    assert ranker.state_cache is model.state_cache and ranker.state_cache is not None
    assert ranker.state_cache.capacity == 8
    ranker.keep_states(0)
    assert ranker.state_cache is None


def test_a_model_without_states_has_no_cache() -> None:
    ranker = SequentialRanker(_Scorer())  # type: ignore[arg-type]
    ranker.keep_states(8)
    assert ranker.state_cache is None
