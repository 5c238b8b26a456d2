"""Service settings: one validated model, filled from the command line and the environment."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rankstack.errors import ConfigError

ADMIN_TOKEN_ENV = "RANKSTACK_ADMIN_TOKEN"
# The event loop, the batch worker and the pipeline's stage threads share one GIL; CPython's default 5 ms
# switch interval makes a thread that becomes runnable wait up to 5 ms behind a busy one. 0.5 ms cut the
# median latency by a third under load on the 2-core box (docs/benchmarks.md, Serving).
SWITCH_INTERVAL_S = 0.0005


DEFAULT_BATCH_WAIT_MS = 2.5  # lightly loaded: no wait; saturated: this long (docs/serving.md, "Micro-batching")


class ServiceSettings(BaseModel):
    """How the HTTP service runs; unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid")
    artifact: Path = Field(description="Artifact (folder) served at start; /admin/reload may swap in another.")
    admin_token: str | None = Field(default=None, min_length=16, description="Bearer token of /admin/*; None = off.")
    max_body_bytes: int = Field(default=1_000_000, ge=1_024, description="Larger request bodies get 413.")
    deadline_s: float | None = Field(default=0.1, gt=0, description=(
        "Time budget of a recommend request, counted from its arrival: what is left of it when its batch starts is "
        "handed to Recommender.recommend, and load shedding (shed) refuses requests that cannot make it."))
    state_retry_s: float = Field(default=1.0, ge=0, description=(
        "After a state-store failure, skip it this long; each failed retry after a pause doubles the pause."))
    state_retry_max_s: float = Field(default=30.0, ge=0, description="Longest pause of the doubling back-off.")
    state_timeout_ms: float = Field(default=50.0, gt=0, description=(
        "Most a recommend batch waits for one state read (also capped by the deadline); slower reads degrade."))
    event_max_skew_s: float = Field(default=300.0, ge=0, description=(
        "Event timestamps later than the service's clock plus this (clock skew) get 422."))
    max_batch: int = Field(default=32, ge=1, le=1_024, description="Most requests answered by one pipeline call.")
    batch_wait_ms: float = Field(default=DEFAULT_BATCH_WAIT_MS, ge=0, le=100, description=(
        "Longest wait for a batch to fill: a request that finds the batcher idle waits nothing while the worker "
        "spent under a quarter of the last half second running batches, then up to this much as that share "
        "rises to 1 (0: never wait)."))
    max_queue: int = Field(default=1_000, ge=1, description=(
        "Hard bound: recommend requests (and, separately, event posts) waiting beyond this get 503, shed or not."))
    event_deadline_s: float | None = Field(default=1.0, gt=0, description=(
        "With shed on: an event post arriving while the oldest post in flight has waited longer than this to be "
        "stored gets 503 with Retry-After at once (the store is not keeping up; nothing is stored, clients retry). "
        "None: only max_queue bounds event posts."))
    shed: bool = Field(default=True, description=(
        "Load shedding by deadline: a recommend request whose expected queue wait plus service time passes "
        "deadline_s gets 503 with Retry-After at once, and a queued one whose deadline passed is dropped unrun. "
        "Off: requests queue up to max_queue and late batches degrade instead (deadline_s None: off too)."))
    max_connections: int | None = Field(default=None, ge=1, description=(
        "uvicorn's limit_concurrency: with this many connections or requests open, uvicorn answers new requests "
        "itself with a plain 503 and closes the connection (every path, /healthz too). None: no limit."))
    backlog: int = Field(default=2_048, ge=1, description=(
        "Listen backlog: connections the kernel queues before the server accepts them (capped by somaxconn)."))
    warmup_user: str = Field(default="__rankstack_warmup__", description="User of the smoke request run on reload.")
    workers: int = Field(default=1, ge=1, description="Server processes sharing the port, each with its own model.")
    pin_workers: bool = Field(default=False, description=(
        "Run each server process on one core of those the service may use (worker i on the i-th, round robin): "
        "no moves between cores, and a worker's threads pass the GIL on one core. For a box given to the "
        "service (docs/serving.md, \"Workers and cores\"); off: the kernel places them."))
    balance_workers: bool = Field(default=True, description=(
        "With several workers: a worker whose request rate is over 10% above the workers' mean closes some of its "
        "kept-alive connections (each at its next response) so that clients reconnect and the kernel places them "
        "anew (docs/serving.md, \"Workers and cores\")."))
    batcher: Literal["loop", "thread"] = Field(default="loop", description=(
        "Where recommend batches run: on the event loop's thread (no second thread competes for the GIL) or on "
        "a worker thread (the loop keeps parsing requests while a batch runs)."))
    inline_batch_ms: float = Field(default=50.0, ge=0, description=(
        "Loop batcher only: a batch expected (by the fitted batch cost) to take longer than this runs on a worker "
        "thread, so that the loop keeps refusing requests that cannot make their deadline and answering /healthz "
        "while it runs; shorter ones run on the loop's thread (a refusal waits out at most such a batch)."))
    request_start_header: str | None = Field(default=None, pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$", description=(
        "Header a front proxy stamps with the time it received the request (e.g. X-Request-Start: t=<seconds>); "
        "when named, a recommend request's deadline counts from that stamp, so one that waited upstream or in the "
        "socket queue is shed or budgeted by its real age. The proxy's and the service's clocks must agree."))

    @classmethod
    def from_env(cls, artifact: Path, **overrides: object) -> ServiceSettings:
        """Settings with the admin token taken from ``$RANKSTACK_ADMIN_TOKEN`` when it is set."""
        token = os.environ.get(ADMIN_TOKEN_ENV) or None
        try:
            return cls.model_validate({"artifact": artifact, "admin_token": token, **overrides})
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
            raise ConfigError(f"invalid service settings ({ADMIN_TOKEN_ENV} feeds admin_token): {problems}") from None
