"""Bodies of the service's own endpoints (the recommendation types live in ``rankstack.pipeline.api``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rankstack.events import Event, FiniteFloat

MAX_EVENTS_PER_BATCH = 1_000


EARLIEST_EVENT_S = 946_684_800.0  # 2000-01-01 UTC: an event timestamp before it is a unit or clock mistake
LATEST_EVENT_S = 4_102_444_800.0  # 2100-01-01 UTC: the schema's static bound; the endpoint enforces now + skew


class IncomingEvent(Event):
    """An event as posted: its timestamp, when given, lies between 2000-01-01 and the service's clock plus the
    accepted clock skew (``event_max_skew_s``, default 300 s; checked by the endpoint, as it moves)."""

    timestamp: Annotated[FiniteFloat, Field(ge=EARLIEST_EVENT_S, le=LATEST_EVENT_S, description=(
        "Seconds since the epoch, from 2000-01-01 to the service's clock + event_max_skew_s (default 300 s); "
        "default: arrival time."))] | None = None


class EventBatch(BaseModel):
    """``POST /v1/events`` body: 1 to 1,000 events; timestamps (seconds since the epoch) default to arrival."""

    model_config = ConfigDict(extra="forbid")
    events: list[IncomingEvent] = Field(min_length=1, max_length=MAX_EVENTS_PER_BATCH)

    @model_validator(mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, data: Any) -> Any:
        """JSON ``true`` / ``false`` are not numbers: refuse them where a number is expected instead of coercing."""
        events = data.get("events") if isinstance(data, dict) else None
        for i, e in enumerate(events if isinstance(events, list) else []):
            for name in ("timestamp", "value", "propensity"):
                if isinstance(e, dict) and isinstance(e.get(name), bool):
                    raise ValueError(f"events[{i}].{name} must be a number, got {str(e[name]).lower()}")
        return data


def check_timestamps(events: Sequence[Event], *, now: float, max_skew_s: float) -> None:
    """Refuse (``UnprocessableError`` naming the field) a timestamp later than ``now + max_skew_s``: a far-future
    event would stay its user's most recent one forever."""
    for i, e in enumerate(events):
        if e.timestamp is not None and e.timestamp > now + max_skew_s:
            raise UnprocessableError(
                ["body", "events", i, "timestamp"],
                f"events[{i}].timestamp {e.timestamp!r} is later than the service's clock ({now:.0f}) plus the "
                f"accepted clock skew of {max_skew_s:.0f} s", "timestamp_in_future")


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
    digest: str | None = Field(default=None, description="Content address of the artifact now served (sha256:…).")
    workers_switched: int | None = Field(default=None, description="Worker processes now serving ``version`` "
                                         "(only when the service runs several).")


class Status(BaseModel):
    """Liveness / readiness answer."""

    status: str
    model_version: str | None = None
    model_digest: str | None = None
    artifact: str | None = None
    state_store: str | None = None
    workers_serving: int | None = Field(default=None, description="Worker processes serving now (several only).")
    workers_expected: int | None = Field(default=None, description="Worker processes when the service is whole.")


class ErrorBody(BaseModel):
    """Every non-422 error the service answers with: one sentence saying what went wrong."""

    detail: str


class OverloadBody(ErrorBody):
    """A 503 from an overloaded service: why the request was shed and when to retry (also in ``Retry-After``)."""

    reason: Literal["deadline", "queue_full", "expired"] = Field(description=(
        "deadline: the expected queue wait plus service time passes the deadline; queue_full: max_queue requests "
        "(or event posts) already wait; expired: the deadline passed while the request queued."))
    retry_after_s: int = Field(ge=1, description="Whole seconds to wait before retrying (the Retry-After header).")
    expected_ms: float | None = Field(default=None, description=(
        "deadline: the expected time to an answer; expired: the time the request waited."))
    deadline_ms: float | None = Field(default=None, description="The service's deadline per request.")


class InvalidItem(BaseModel):
    """One problem with the input: where (``loc``), what (``msg``) and its kind (``type``)."""

    loc: list[str | int]
    msg: str
    type: str


class InvalidBody(BaseModel):
    """Every 422: the problems one by one and ``message``, one sentence naming each bad field."""

    detail: list[InvalidItem]
    message: str

    @classmethod
    def of(cls, problems: list[InvalidItem]) -> InvalidBody:
        """The body for a list of problems."""
        return cls(detail=problems, message="; ".join(f"{'.'.join(map(str, p.loc))}: {p.msg}" for p in problems))


class ShedError(Exception):
    """Raised by an endpoint that refuses a request to stay within its bounds (answered as 503 + ``Retry-After``)."""

    def __init__(self, body: OverloadBody) -> None:
        super().__init__(body.detail)
        self.body = body
        self.headers = {"Retry-After": str(body.retry_after_s)}


class UnprocessableError(Exception):
    """Raised by an endpoint for a well-formed request that cannot be served as asked (answered as 422)."""

    def __init__(self, loc: list[str | int], msg: str, kind: str) -> None:
        super().__init__(msg)
        self.body = InvalidBody.of([InvalidItem(loc=loc, msg=msg, type=kind)])
