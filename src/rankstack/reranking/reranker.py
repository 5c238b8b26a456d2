"""The re-ranker interface, its per-request context, and structured explanations of rule decisions."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

import numpy as np

from rankstack.candidates import Candidates
from rankstack.reranking.exposure import ExposureStore

EXPLAIN_LOGGER = logging.getLogger("rankstack.reranking.explain")

Action = Literal["removed", "throttled", "capped", "moved", "pinned", "boosted", "buried", "rejected"]


@dataclass(frozen=True)
class Explanation:
    """One rule decision: ``rule`` did ``action`` to ``item_id`` in the list of ``user_id`` (row ``row``).

    ``from_rank``/``to_rank`` are 1-based positions (rank in the incoming list, slot in the slate) when known.
    """

    row: int
    user_id: int
    item_id: int
    rule: str
    action: Action
    reason: str
    from_rank: int | None = None
    to_rank: int | None = None

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready dict of the record."""
        return {
            "row": self.row, "user_id": self.user_id, "item_id": self.item_id, "rule": self.rule,
            "action": self.action, "reason": self.reason, "from_rank": self.from_rank, "to_rank": self.to_rank,
        }


class ExplanationTrace:
    """Collects the explanations of one batch of requests and logs each one on ``rankstack.reranking.explain``."""

    def __init__(self, *, log_level: int = logging.INFO) -> None:
        self.records: list[Explanation] = []
        self.log_level = log_level

    def add(self, record: Explanation) -> None:
        """Store ``record`` and log it."""
        self.records.append(record)
        if EXPLAIN_LOGGER.isEnabledFor(self.log_level):
            EXPLAIN_LOGGER.log(
                self.log_level, "user=%d item=%d %s by rule %r: %s (rank %s -> %s)", record.user_id,
                record.item_id, record.action, record.rule, record.reason, record.from_rank, record.to_rank,
            )

    def for_row(self, row: int) -> list[Explanation]:
        """The explanations of batch row ``row``."""
        return [r for r in self.records if r.row == row]

    def __iter__(self) -> Iterator[Explanation]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)


@dataclass
class RerankContext:
    """What a re-ranker may know about a batch of requests besides the candidates.

    ``user_ids`` [batch] are internal ids (row b of the candidates belongs to ``user_ids[b]``); ``now`` is the
    request time in epoch seconds; ``exposure`` answers frequency-cap and history rules; ``spend`` maps an
    advertiser (attribute value) to its spend so far, for budget pacing; ``trace`` collects explanations.
    """

    user_ids: np.ndarray
    now: float = 0.0
    exposure: ExposureStore | None = None
    spend: Mapping[str, float] | None = None
    trace: ExplanationTrace | None = field(default=None)

    def __post_init__(self) -> None:
        self.user_ids = np.asarray(self.user_ids, dtype=np.int64).reshape(-1)

    @classmethod
    def for_users(cls, user_ids: np.ndarray | list[int], **kwargs: object) -> RerankContext:
        """A context for ``user_ids`` (keyword arguments as in the constructor)."""
        return cls(np.asarray(user_ids, dtype=np.int64), **kwargs)  # type: ignore[arg-type]

    def check(self, candidates: Candidates) -> None:
        """Raise ValueError unless there is one user id per candidate row."""
        if len(self.user_ids) != candidates.item_ids.shape[0]:
            raise ValueError(
                f"RerankContext has {len(self.user_ids)} user ids but the candidates have "
                f"{candidates.item_ids.shape[0]} rows"
            )


@runtime_checkable
class Reranker(Protocol):
    """Turns candidates [batch, N] into slates [batch, k] (``-1`` pads rows with fewer eligible items)."""

    def rerank(self, candidates: Candidates, k: int, context: RerankContext) -> Candidates:
        """The re-ranked top-``k`` per row."""
        ...
