"""The request/response types and the two interfaces shared by the pipeline and the HTTP service.

``Recommender.recommend`` is the one code path used by offline evaluation, log replay, the simulator
loop and the service; ``StateStore`` holds the online state it reads (recent histories, exposure
counts, bandit statistics) and the events the service ingests.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated, Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, field_validator

MAX_K = 500
StageStatus = Literal["ran", "degraded", "skipped", "failed"]
EventKind = Literal["impression", "click", "conversion"]


# Numbers at the HTTP boundary are strict: JSON ``true`` is not 1 and ``"5"`` is not 5 (no coercion), and a float
# must be finite. An int is accepted where a float is expected (JSON does not tell ``5`` from ``5.0``).
FiniteFloat = Annotated[float, Field(strict=True, allow_inf_nan=False)]
ContextValue = StrictStr | StrictInt | FiniteFloat | StrictBool


class RecommendRequest(BaseModel):
    """One user's request: external ids throughout; ``context`` is free-form (placement, device, …)."""

    model_config = ConfigDict(extra="forbid")
    user_id: str = Field(min_length=1, max_length=256)
    k: int = Field(default=10, ge=1, le=MAX_K)
    context: dict[str, ContextValue] = Field(default_factory=dict)
    exclude: list[str] = Field(default_factory=list, max_length=10_000)
    filters: dict[str, list[str]] = Field(default_factory=dict)
    request_id: str | None = Field(default=None, max_length=128)

    @field_validator("k", mode="before")
    @classmethod
    def _k_is_a_number(cls, k: Any) -> Any:
        """``k`` is a JSON integer (``5`` or ``5.0``, as JSON Schema has it), never a boolean or a string."""
        if isinstance(k, bool) or not isinstance(k, int | float):
            raise ValueError(f"must be an integer, got {type(k).__name__} {k!r}")
        return k

    @field_validator("context", mode="before")
    @classmethod
    def _plain_context_values(cls, context: Any) -> Any:
        """One clear error per bad ``context`` value (instead of one per member of the value union)."""
        for key, value in context.items() if isinstance(context, dict) else ():
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"context.{key} must be a finite number, got {value}")
            if not isinstance(value, str | int | float):  # bool is an int
                raise ValueError(f"context.{key} must be a string, number or boolean, got {type(value).__name__}")
        return context


class ScoredItem(BaseModel):
    """One slot of a slate: the item, the final score and the logging propensity (None if deterministic)."""

    item_id: str
    score: float
    propensity: float | None = None


class RecommendResponse(BaseModel):
    """A slate plus what produced it: each stage's status (ran / degraded / skipped / failed) and wall time in ms."""

    request_id: str
    user_id: str
    items: list[ScoredItem]
    stages: dict[str, StageStatus] = Field(default_factory=dict)
    model_version: str = ""
    model_digest: str = Field(default="", description="Content address of the served artifact (sha256:…).")
    fallback: str | None = None
    stage_ms: dict[str, float] = Field(default_factory=dict)


class Event(BaseModel):
    """One feedback event; ``event_id`` makes ingestion idempotent; ``value`` is revenue for conversions."""

    model_config = ConfigDict(extra="forbid")
    event_id: str = Field(min_length=1, max_length=128)
    user_id: str = Field(min_length=1, max_length=256)
    item_id: str = Field(min_length=1, max_length=256)
    event: EventKind
    request_id: str | None = Field(default=None, max_length=128)
    timestamp: FiniteFloat | None = None
    value: FiniteFloat | None = None
    propensity: Annotated[FiniteFloat, Field(gt=0, le=1)] | None = None


@runtime_checkable
class StateStore(Protocol):
    """Online state. Implementations: SQLite in WAL mode (embedded default) and Redis."""

    def add_events(self, events: Sequence[Event]) -> int:
        """Durably store events (idempotent on ``event_id``) before returning; returns how many were new."""
        ...

    def recent_items(self, user_id: str, n: int, *, events: Sequence[str] = ("click", "conversion")) -> list[str]:
        """The user's last ``n`` items with an event in ``events``, oldest first."""
        ...

    def exposure_counts(self, user_id: str, *, since: float, events: Sequence[str] = ("impression",)) -> dict[str, int]:
        """Item id → the user's number of ``events`` at or after ``since`` (frequency caps)."""
        ...

    def bandit_stats(self, arm_ids: Sequence[str]) -> dict[str, tuple[float, float]]:
        """Arm → (pulls, reward sum) of exploration statistics."""
        ...

    def healthy(self) -> bool:
        """True when the store answers (readiness)."""
        ...



@runtime_checkable
class BatchStateReads(Protocol):
    """A state store that answers the reads of a whole request batch in one round trip (both built-in stores)."""

    def recent_items_many(self, user_ids: Sequence[str], n: int, *,
                          events: Sequence[str] = ("click", "conversion")) -> list[list[str]]:
        """``recent_items`` of each user, in order."""
        ...

    def exposure_counts_many(self, user_ids: Sequence[str], *, since: float,
                             events: Sequence[str] = ("impression",)) -> list[dict[str, int]]:
        """``exposure_counts`` of each user, in order."""
        ...


def recent_items_many(state: StateStore, user_ids: Sequence[str], n: int, *,
                      events: Sequence[str] = ("click", "conversion")) -> list[list[str]]:
    """Each user's recent items: one batched read where the store offers it, else one read per user."""
    many = getattr(state, "recent_items_many", None)  # not isinstance: a Protocol check costs ~10 us per call
    if callable(many):
        return list(many(user_ids, n, events=events))
    return [state.recent_items(u, n, events=events) for u in user_ids]


def exposure_counts_many(state: StateStore, user_ids: Sequence[str], *, since: float,
                         events: Sequence[str] = ("impression",)) -> list[dict[str, int]]:
    """Each user's exposure counts: one batched read where the store offers it, else one read per user."""
    many = getattr(state, "exposure_counts_many", None)
    if callable(many):
        return list(many(user_ids, since=since, events=events))
    return [state.exposure_counts(u, since=since, events=events) for u in user_ids]

@runtime_checkable
class Recommender(Protocol):
    """What the service serves: a trained pipeline loaded from an artifact."""

    version: str

    def recommend(
        self, requests: Sequence[RecommendRequest], state: StateStore | None = None, *,
        deadline_s: float | None = None,
    ) -> list[RecommendResponse]:
        """Slates for a batch of requests; degrades stage by stage instead of failing."""
        ...

    def describe(self) -> dict[str, Any]:
        """Manifest summary (version, stages, data checksum, metrics) for /readyz and the registry."""
        ...


@runtime_checkable
class KnownItems(Protocol):
    """Optional for a Recommender: which external item ids its catalog has (the events endpoint reports the rest)."""

    def known_items(self, item_ids: Sequence[str]) -> list[bool]:
        """One flag per id: True when the item is in the served catalog."""
        ...
