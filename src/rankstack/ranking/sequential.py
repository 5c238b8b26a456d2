"""A sequential model (SASRec) as a pipeline ``Ranker``: re-scores given candidates from each row's history."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from rankstack.errors import ConfigError
from rankstack.ranking.ranker import RankBatch
from rankstack.retrieval.source import CandidateSource
from rankstack.retrieval.source_files import save_source
from rankstack.sequential.state_cache import CachesStates, StateCache

NEXT_ITEM = "next_item"  # the one objective: the model's score of each candidate as the user's next item


@runtime_checkable
class HistoryScorer(Protocol):
    """A fitted model that re-scores given candidates from each user's recent history (e.g. SASRec)."""

    def score_candidates(self, histories: Sequence[np.ndarray], candidates: np.ndarray) -> torch.Tensor:
        """Scores [B, C] of ``candidates`` [B, C] (internal item ids) given ``histories`` (oldest first)."""
        ...


class SequentialRanker:
    """``score(batch)`` → ``{"next_item": [B, C]}`` from the fitted ``source``'s ``score_candidates``; rows
    without a history and pads get NaN. The source may be one of the pipeline's candidate sources as well."""

    objectives: tuple[str, ...] = (NEXT_ITEM,)
    needs_history = True

    def __init__(self, source: CandidateSource) -> None:
        if not isinstance(source, HistoryScorer):
            raise ConfigError(f"ranker {type(source).__name__} has no score_candidates method")
        self.source = source
        self.name = source.name
        self._scorer: HistoryScorer = source  # checked here once: a Protocol isinstance costs ~50 us per call
        self._states: CachesStates | None = source if isinstance(source, CachesStates) else None

    def score(self, batch: RankBatch) -> dict[str, np.ndarray]:
        """Scores [B, C] for rows with a history (NaN elsewhere and on pads)."""
        out = np.full(batch.item_ids.shape, np.nan)
        rows = [r for r, h in enumerate(batch.histories) if len(h)]
        if rows:
            cands = batch.item_ids[rows]
            with torch.no_grad():
                scores = self._scorer.score_candidates([batch.histories[r] for r in rows],
                                                       np.where(cands >= 0, cands, 0))
            scores_np = torch.as_tensor(scores).float().cpu().numpy().astype(np.float64)
            if scores_np.shape != cands.shape:
                raise ValueError(f"score_candidates returned {scores_np.shape}, expected {cands.shape}")
            out[rows] = np.where(cands >= 0, scores_np, np.nan)
        return {NEXT_ITEM: out}

    @property
    def state_cache(self) -> StateCache | None:
        """The source's user-state cache (None when it keeps none)."""
        return None if self._states is None else self._states.state_cache

    def keep_states(self, capacity: int) -> None:
        """Cache up to ``capacity`` user states keyed by the exact history (models that cache states only)."""
        if self._states is not None:
            self._states.enable_state_cache(capacity)

    def warm(self, histories: Sequence[np.ndarray]) -> int:
        """Compute and cache the states of the non-empty ``histories``, as many as the cache holds."""
        cache = None if self._states is None else self._states.state_cache
        if self._states is None or cache is None:
            return 0
        chosen = [h for h in histories if len(h)][: cache.capacity]
        self._states.user_states(chosen)
        return len(chosen)

    def save(self, root: Path, sources: Mapping[str, CandidateSource]) -> str:
        """Write the model under ``root/ranker``, unless it is one of ``sources`` (then point at its folder)."""
        shared = next((n for n, s in sources.items() if s is self.source), None)
        if shared is not None:
            return f"sources/{shared}"
        save_source(self.source, root / "ranker")
        return "ranker"

    @classmethod
    def load(cls, root: Path, rel: str, sources: Mapping[str, CandidateSource],
             read_source: Callable[[Path], CandidateSource]) -> SequentialRanker:
        """The ranker :meth:`save` wrote at ``root/rel`` (one of the loaded ``sources`` when it points there)."""
        shared = rel.removeprefix("sources/") if rel.startswith("sources/") else ""
        return cls(sources[shared] if shared in sources else read_source(root / rel))
