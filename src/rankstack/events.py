"""One feedback event as the service ingests it and the state stores keep it (the HTTP boundary: external ids)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

EventKind = Literal["impression", "click", "conversion"]

# Numbers at the HTTP boundary are strict: JSON ``true`` is not 1 and ``"5"`` is not 5 (no coercion), and a float
# must be finite. An int is accepted where a float is expected (JSON does not tell ``5`` from ``5.0``).
FiniteFloat = Annotated[float, Field(strict=True, allow_inf_nan=False)]


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
