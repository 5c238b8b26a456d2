"""The request/response types and the ``Recommender`` interface shared by the pipeline and the HTTP service.

``Recommender.recommend`` is the one code path used by offline evaluation, log replay, the simulator
loop and the service; the online state it reads is a ``rankstack.state.store.StateStore``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, field_validator

from rankstack.events import FiniteFloat
from rankstack.state.store import StateStore

MAX_K = 500
StageStatus = Literal["ran", "degraded", "skipped", "failed"]
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
    time: float | None = Field(default=None, allow_inf_nan=False, description=(
        "when the request was made, epoch seconds (default: when it arrives); for replaying a log"))

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

    @classmethod
    def trusted(cls, item_id: str, score: float, propensity: float | None) -> ScoredItem:
        """An item built from values of the right types without validation: what ``model_construct`` makes, less
        its walk over the fields (2.4 against 5.5 us; a slate has k of them). Only for our own output."""
        item = cls.__new__(cls)
        _set = object.__setattr__
        _set(item, "__dict__", {"item_id": item_id, "score": score, "propensity": propensity})
        _set(item, "__pydantic_fields_set__", {"item_id", "score", "propensity"})
        _set(item, "__pydantic_extra__", None)
        _set(item, "__pydantic_private__", None)
        return item


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
