"""Bodies of the service's own endpoints (the recommendation types live in ``rankstack.pipeline.api``)."""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rankstack.pipeline.api import Event

MAX_EVENTS_PER_BATCH = 1_000


class EventBatch(BaseModel):
    """``POST /v1/events`` body: 1 to 1,000 events; timestamps (seconds since the epoch) default to arrival."""

    model_config = ConfigDict(extra="forbid")
    events: list[Event] = Field(min_length=1, max_length=MAX_EVENTS_PER_BATCH)

    @model_validator(mode="after")
    def _finite_numbers(self) -> EventBatch:
        """Reject NaN / infinite timestamps and values, which JSON parsers may let through."""
        for i, e in enumerate(self.events):
            for name in ("timestamp", "value"):
                number = getattr(e, name)
                if number is not None and not math.isfinite(number):
                    raise ValueError(f"events[{i}].{name} must be a finite number, got {number}")
        return self


class EventsAck(BaseModel):
    """What was stored: ``new`` + ``duplicates`` = ``received``; ``unknown_items`` were stored but are not served."""

    received: int
    new: int
    duplicates: int
    unknown_items: list[str] = Field(default_factory=list)


class ReloadRequest(BaseModel):
    """``POST /admin/reload`` body: the artifact to serve next (default: reload the current path)."""

    model_config = ConfigDict(extra="forbid")
    artifact: str | None = Field(default=None, min_length=1, max_length=4096)


class ReloadResponse(BaseModel):
    """The version served before and after a successful reload."""

    previous_version: str
    version: str
    artifact: str


class Status(BaseModel):
    """Liveness / readiness answer."""

    status: str
    model_version: str | None = None
    artifact: str | None = None
    state_store: str | None = None


class ErrorBody(BaseModel):
    """Every error the service raises on purpose: one sentence saying what went wrong."""

    detail: str
