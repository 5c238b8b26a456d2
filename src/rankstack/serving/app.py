"""The FastAPI application: recommend, ingest events, health, metrics and hot reload."""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ValidationError
from starlette.types import ASGIApp

from rankstack.errors import RankstackError
from rankstack.pipeline.api import RecommendRequest, RecommendResponse
from rankstack.serving.admission import OverloadedError, PostsInFlight
from rankstack.serving.batcher import LoopBatcher, MicroBatcher
from rankstack.serving.docs_page import docs_html
from rankstack.serving.fanout import ReloadGroup
from rankstack.serving.fast_path import ARRIVED, FastRoute, response_json
from rankstack.serving.guard import BoundedCalls, DurabilityWatch, GuardedState, HealthProbe, StateBreaker
from rankstack.serving.loop_writer import LoopWriter, WriterClosedError
from rankstack.serving.middleware import ServiceApp, ServiceMiddleware
from rankstack.serving.model_slot import Loaded, ModelSlot, RecommenderLoader, ReloadRefusedError
from rankstack.serving.online_learning import OnlineLearning
from rankstack.serving.prometheus import ServiceMetrics
from rankstack.serving.rebalance import BALANCE_PERIOD_S, CloseToRebalance, Rebalance
from rankstack.serving.request_ids import new_request_id
from rankstack.serving.schemas import (
    ErrorBody,
    EventBatch,
    EventsAck,
    InvalidBody,
    InvalidItem,
    OverloadBody,
    ReloadRequest,
    ReloadResponse,
    ShedError,
    Status,
    UnprocessableError,
    check_timestamps,
)
from rankstack.serving.settings import ServiceSettings
from rankstack.state.store import StateStore

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)
_ERROR_MODELS: dict[int, Any] = {422: InvalidBody, 503: OverloadBody | ErrorBody}  # 503: shed, or a failure


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses a route can answer with (422 always has the ``InvalidBody`` shape)."""
    return {code: {"model": _ERROR_MODELS.get(code, ErrorBody)} for code in codes}


def create_app(recommender_loader: RecommenderLoader, state: StateStore, settings: ServiceSettings, *,
               group: ReloadGroup | None = None, on_shutdown: Sequence[Callable[[], None]] = ()) -> FastAPI:
    """Load ``settings.artifact`` with ``recommender_loader`` and build the service around it and ``state``.

    With ``group`` the app is one of several worker processes: reloads reach every worker, ``/metrics`` adds up
    all of them and responses name the answering worker. ``on_shutdown`` runs after the batcher has stopped."""
    slot = (ModelSlot(recommender_loader, settings.artifact, settings.warmup_user) if group is None
            else group.open_slot(recommender_loader, settings.artifact, settings.warmup_user))
    metrics = ServiceMetrics(multiprocess=group is not None)
    metrics.model_served(slot.current)
    breaker = StateBreaker(settings.state_retry_s, settings.state_retry_max_s)
    reader = BoundedCalls(2, "rankstack-state", inline_after=20 if getattr(state, "local_reads", False) else 0)
    probe = HealthProbe(state, HEALTH_TIMEOUT_S)
    durability = DurabilityWatch(state, metrics.state_durable)
    learning = OnlineLearning(state)

    def served(loaded: Loaded) -> None:
        """A model now serves: record it, and start its online learning (learning policies only)."""
        metrics.model_served(loaded)
        learning.follow(loaded.recommender)

    def store_answers() -> bool:
        """The store's health (off the caller's thread, at most ``HEALTH_TIMEOUT_S``), kept in ``state_up``; the
        first time it answers, its durability settings are checked too."""
        ok = probe.healthy()
        metrics.state_up.set(1 if ok else 0)
        if ok:
            durability.check()
        return ok

    def run_batch(requests: list[RecommendRequest], waited_s: float) -> list[RecommendResponse]:
        """One batched pipeline call on the current model, its deadline counted from the oldest request's
        arrival (late batches fall back to cheap stages); the state view records whether reads degraded."""
        deadline = None if settings.deadline_s is None else max(settings.deadline_s - waited_s, 0.001)
        guarded = GuardedState(state, breaker, reader, timeout_s=settings.state_timeout_ms / 1000.0,
                               deadline_at=None if deadline is None else time.perf_counter() + deadline)
        with slot.use() as loaded:
            responses = loaded.recommender.recommend(requests, guarded, deadline_s=deadline)
            metrics.observe_caches(loaded.recommender)
        for response in responses:
            if guarded.used:
                response.stages["state"] = "degraded" if guarded.degraded else "ran"
                response.stage_ms["state"] = round(guarded.elapsed_s * 1000.0, 3)
                if guarded.degraded and response.fallback is None:
                    response.fallback = "no_fresh_state"
        if responses:
            metrics.observe_stages(responses[0].stage_ms)
        return responses

    def observe_batch(size: int, waited_s: float) -> None:
        """Record a batch's size, how long its oldest request waited, and the batch costs shedding assumes."""
        metrics.batch_size.observe(size)
        metrics.queue_seconds.observe(waited_s)
        now = time.monotonic()
        if now < gauges_due[0]:  # the estimates move slowly: a scrape a few times a second is plenty
            return
        gauges_due[0] = now + GAUGE_PERIOD_S
        cost = batcher.admission.cost
        estimate_single.set(cost.seconds(1))
        estimate_full.set(cost.seconds(settings.max_batch))
        metrics.admission_margin.set(batcher.admission.margin.value_s)
        at = time.perf_counter()
        metrics.busy_share.set(batcher.busy.share(at))
        metrics.fill_wait.set(batcher.fill_wait_s(at))

    gauges_due = [0.0]
    estimate_single, estimate_full = (metrics.service_estimate.labels(size) for size in ("single", "full"))

    rebalance = Rebalance()
    bounds: dict[str, Any] = {"max_batch": settings.max_batch, "max_wait_s": settings.batch_wait_ms / 1000.0,
                              "max_queue": settings.max_queue, "on_batch": observe_batch,
                              "deadline_s": settings.deadline_s, "shed": settings.shed}
    batcher = (LoopBatcher(run_batch, inline_max_s=settings.inline_batch_ms / 1000.0, **bounds)
               if settings.batcher == "loop" else MicroBatcher(run_batch, **bounds))
    in_flight = PostsInFlight(settings.max_queue, settings.event_deadline_s if settings.shed else None)
    writer: LoopWriter[EventBatch, EventsAck] = LoopWriter(lambda batches: store_posts(batches),
                                                           name="rankstack-events")
    write_many = getattr(state, "add_event_batches", None)  # posts queued together in one write (SQLite, Redis)

    def start() -> None:
        """Check the store once (durability warning), follow the other workers' reloads (several workers only)."""
        store_answers()
        learning.follow(slot.current.recommender)
        if group is not None:
            group.start(slot, on_reload=served, on_join=rebalance.trigger, on_poll=balance)

    balance_due, balance_counted = [0.0], [0]

    def balance() -> None:
        """Every BALANCE_PERIOD_S (on the reload follower's thread): publish this worker's request rate and, with
        ``balance_workers``, close the connections that carry its excess over the other workers'."""
        now = time.monotonic()
        if group is None or now < balance_due[0]:
            return
        balance_due[0] = now + BALANCE_PERIOD_S
        rate = rebalance.rate(now)
        if rate is None:
            return
        group.publish_load(rate)
        # off: no peers, so nothing is closed (and the connections noted for the balance are still let go)
        rebalance.balance(rate, group.peer_loads(3 * BALANCE_PERIOD_S) if settings.balance_workers else [])
        closed, balance_counted[0] = rebalance.balance_closes - balance_counted[0], rebalance.balance_closes
        if closed:
            metrics.balance_closes.inc(closed)

    stops = [group.stop] if group is not None else []
    app = ServiceApp(title="rankstack", version="1", summary="Multi-stage recommendations and feedback events.",
                  docs_url=None, redoc_url=None,  # FastAPI's pages load their scripts from a CDN: see docs_page
                  lifespan=_lifespan(start, [*stops, batcher.close, writer.close, reader.close, probe.close,
                                             learning.stop, *on_shutdown]))
    app.state.slot, app.state.metrics, app.state.store, app.state.writer = slot, metrics, state, writer

    @app.get("/docs", include_in_schema=False, response_class=HTMLResponse)
    async def docs() -> HTMLResponse:
        """The API at a glance, without anything loaded from the internet."""
        return HTMLResponse(docs_html(app.openapi(), app.openapi_url or "/openapi.json"))

    @app.exception_handler(RequestValidationError)
    async def invalid_input(request: Request, exc: RequestValidationError) -> JSONResponse:
        """422 with the pydantic errors and one readable sentence naming each bad field."""
        metrics.errors.labels(request.url.path if request.url.path in _ROUTES else "unmatched", "invalid_input").inc()
        body = InvalidBody.of([InvalidItem(loc=list(e["loc"]), msg=e["msg"], type=e["type"]) for e in exc.errors()])
        return JSONResponse(status_code=422, content=body.model_dump())

    @app.exception_handler(ShedError)
    async def shed(request: Request, exc: ShedError) -> JSONResponse:
        """503 with ``Retry-After`` and an ``OverloadBody`` saying why the request was refused."""
        return JSONResponse(status_code=503, content=exc.body.model_dump(), headers=exc.headers)

    @app.exception_handler(UnprocessableError)
    async def unprocessable(request: Request, exc: UnprocessableError) -> JSONResponse:
        """422 for a valid request that cannot be served as asked (same shape as validation errors)."""
        return JSONResponse(status_code=422, content=exc.body.model_dump())

    async def answer(body: RecommendRequest, arrived_at: float | None = None) -> RecommendResponse:
        """The slate for one validated request that reached the server at ``arrived_at`` (``perf_counter``; HTTP
        errors raised as ``HTTPException`` / ``ShedError`` / ``UnprocessableError``)."""
        if not body.request_id:  # the body was validated for this request alone: set the id in place
            body.request_id = new_request_id()
        try:
            response = await batcher.answer(body, arrived_at)
        except OverloadedError as exc:
            raise _shed(metrics, "/v1/recommend", exc) from exc
        except RankstackError as exc:
            if isinstance(exc, ValueError):  # RequestError: e.g. a filter on an attribute the catalog lacks
                metrics.errors.labels("/v1/recommend", "bad_request").inc()
                raise UnprocessableError(["body"], f"request cannot be served: {exc}", "request_error") from exc
            metrics.errors.labels("/v1/recommend", "recommender").inc()
            raise HTTPException(503, f"recommender failed: {exc}") from exc
        except Exception as exc:
            log.error("recommender failed: %s", exc, exc_info=exc)
            metrics.errors.labels("/v1/recommend", "recommender").inc()
            raise HTTPException(503, f"recommender failed: {type(exc).__name__}") from exc
        metrics.observe_response(response)
        return response

    @app.post("/v1/recommend", response_model=RecommendResponse, responses=_errors(400, 413, 422, 503))
    async def recommend(body: RecommendRequest, request: Request) -> Response:
        """A slate of ``k`` items for one user; ``stages`` says which stages ran, degraded or fell back. Under
        overload, 503 with ``Retry-After`` (docs/serving.md, "Load shedding")."""
        return Response(response_json(await answer(body, request.scope.get(ARRIVED))), media_type="application/json")

    @app.post("/v1/events", response_model=EventsAck, responses=_errors(400, 413, 422, 503))
    async def ingest(batch: EventBatch) -> EventsAck:
        """Store events durably before answering; duplicates (same ``event_id``) are acknowledged, not recounted.
        Under overload (``max_queue`` posts in flight, or the oldest in flight for longer than ``event_deadline_s``),
        503 with ``Retry-After``: nothing stored."""
        return await ingest_batch(batch)

    async def ingest_batch(batch: EventBatch, arrived_at: float | None = None) -> EventsAck:
        """The events route's work for one validated body (shared with the fast path)."""
        check_timestamps(batch.events, now=time.time(), max_skew_s=settings.event_max_skew_s)
        try:
            token = in_flight.enter(time.perf_counter())
        except OverloadedError as exc:
            raise _shed(metrics, "/v1/events", exc) from exc
        try:
            return await writer.submit(batch)
        except WriterClosedError as exc:  # the service is stopping: its writer takes no more posts
            raise HTTPException(503, "the service is shutting down: nothing was stored, retry shortly",
                                headers={"Retry-After": "1"}) from exc
        finally:
            in_flight.leave(token)

    def store_posts(batches: list[EventBatch]) -> list[EventsAck | Exception]:
        """The writer thread's work: the posts queued since its last write, in one write where the store can
        (``add_event_batches``: SQLite, one transaction and fsync for all, nothing of any stored if it fails; Redis,
        one script call), else in turn; each post's acknowledgement or its 503."""
        news = None
        if len(batches) > 1 and callable(write_many):
            try:
                news = write_many([batch.events for batch in batches])
            except Exception as exc:
                return [not_stored(exc) for _ in batches]
        outcomes: list[EventsAck | Exception] = []
        for at, batch in enumerate(batches):
            try:
                outcomes.append(store(batch) if news is None else acknowledge(batch, news[at]))
            except Exception as exc:
                outcomes.append(exc)
        return outcomes

    def store(batch: EventBatch) -> EventsAck:
        """Write one post's events (on the writer thread: SQLite fsyncs), then acknowledge them."""
        try:
            new = state.add_events(batch.events)
        except Exception as exc:
            raise not_stored(exc) from exc
        return acknowledge(batch, new)

    def not_stored(exc: Exception) -> HTTPException:
        """The 503 for a post the store could not take (the breaker opens; counted, logged)."""
        breaker.trip()
        metrics.errors.labels("/v1/events", "state_store").inc()
        log.warning("events not stored: %s", exc)
        error = HTTPException(503, "state store unavailable: events were not stored, retry later",
                              headers={"Retry-After": "1"})
        error.__cause__ = exc
        return error

    def acknowledge(batch: EventBatch, new: int) -> EventsAck:
        """A stored post's answer: counts, and the items the served model does not know."""
        breaker.reset()
        durability.check()  # a store that was down at start: its settings are checked on its first success
        received = len(batch.events)
        metrics.child(metrics.events, "new").inc(new)
        metrics.child(metrics.events, "duplicate").inc(received - new)
        unknown: list[str] = []
        with slot.use() as loaded:
            known_items = getattr(loaded.recommender, "known_items", None)  # ``KnownItems``; isinstance: ~10 us
            if callable(known_items):
                ids = [e.item_id for e in batch.events]
                flags = known_items(ids)
                unknown = sorted({i for i, known in zip(ids, flags, strict=True) if not known})
                metrics.unknown_items.inc(flags.count(False))
        return EventsAck(received=received, new=new, duplicates=received - new, unknown_items=unknown)

    @app.get("/v1/policy", responses=_errors(404))
    def policy() -> dict[str, Any]:
        """The answering worker's online policy state: log position, events counted and the statistics' SHA-256
        (workers at the same position hold the same digest); 404 when the served pipeline does not learn."""
        with slot.use() as loaded:
            online = getattr(loaded.recommender, "online", None)
            if online is None:
                raise HTTPException(404, "the served pipeline's exploration stage does not learn online")
            return {**online.describe(), "model_version": loaded.version}

    def capacity() -> int | None:
        """Worker processes serving now (recorded in the metrics), None with a single process."""
        if group is None:
            return None
        serving = group.serving()
        metrics.capacity(serving, settings.workers)
        return serving

    @app.get("/healthz", response_model=Status)
    async def healthz() -> Status:
        """Liveness: the process answers (on the event loop itself; the state store is never touched)."""
        return Status(status="ok")

    @app.get("/readyz", response_model=Status, responses={503: {"model": Status}})
    def readyz() -> Any:
        """Readiness: a model is loaded and the state store answers (with several workers, how many serve)."""
        loaded = slot.current
        store_ok = store_answers()
        serving = capacity()
        body = Status(status="ready" if store_ok else "not ready", model_version=loaded.version,
                      model_digest=loaded.digest or None, artifact=str(loaded.artifact),
                      state_store="ok" if store_ok else "unavailable", workers_serving=serving,
                      workers_expected=settings.workers if group is not None else None)
        return JSONResponse(body.model_dump(), status_code=200 if store_ok else 503)

    @app.get("/metrics", response_class=Response)
    def prometheus_metrics() -> Response:
        """Prometheus exposition of the service's metrics."""
        store_answers()
        capacity()
        return Response(metrics.render(), media_type=metrics.content_type)

    async def admin_body(request: Request, authorization: Annotated[str | None, Header()] = None
                         ) -> ReloadRequest | None:
        """The reload body, read only once the admin token checks out (401 / 403 come before any word on the body)."""
        _check_token(settings.admin_token, authorization)
        return await _optional_body(request, ReloadRequest)

    @app.post("/admin/reload", response_model=ReloadResponse, response_model_exclude_none=True,
              responses=_errors(400, 401, 403, 413, 422, 500), openapi_extra=_body_schema(ReloadRequest))
    def reload(body: ReloadRequest | None = Depends(admin_body)) -> ReloadResponse:  # a closure: not in Annotated
        """Load an artifact fully, smoke-test it, then swap it in; in-flight requests finish on the old one.
        With several workers, answers once every worker serves it (500 naming the workers that did not)."""
        target = Path(body.artifact) if body and body.artifact else None
        try:
            if group is None:
                previous, loaded = slot.reload(target)
            else:
                previous, loaded, generation = group.reload(slot, target)
        except ReloadRefusedError as exc:
            metrics.reloads.labels("refused").inc()
            log.warning("%s", exc)
            raise UnprocessableError(["body", "artifact"], f"{exc}; still serving {slot.current.recommender.version!r} "
                                     f"from {slot.current.artifact}", "artifact_refused") from exc
        served(loaded)
        response = ReloadResponse(previous_version=previous.version, version=loaded.version,
                                  artifact=str(loaded.artifact), digest=loaded.digest or None)
        if group is None:
            metrics.reloads.labels("ok").inc()
            return response
        outcome = group.wait(generation)
        if outcome.problems:
            metrics.reloads.labels("incomplete").inc()
            raise HTTPException(500, f"{loaded.recommender.version!r} from {loaded.artifact} is served by "
                                f"{outcome.switched} of {outcome.workers} workers: {'; '.join(outcome.problems)}")
        metrics.reloads.labels("ok").inc()
        return response.model_copy(update={"workers_switched": outcome.switched})

    front: ASGIApp = ServiceMiddleware(app.framework, metrics=metrics, max_body_bytes=settings.max_body_bytes,
                                   worker=None if group is None else str(os.getpid()),
                                   request_start_header=settings.request_start_header,
                                   fast_routes=[FastRoute("/v1/recommend", RecommendRequest, answer),
                                                FastRoute("/v1/events", EventBatch, ingest_batch)])
    app.front = front if group is None else CloseToRebalance(front, rebalance=rebalance)  # outermost: marks all
    return app


def _lifespan(start: Callable[[], None], stops: Sequence[Callable[[], None]]
              ) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    """A lifespan that calls ``start`` when the server starts and each of ``stops`` in order when it stops."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        start()
        yield
        for stop in stops:
            stop()

    return lifespan


def _shed(metrics: ServiceMetrics, endpoint: str, exc: OverloadedError) -> ShedError:
    """Count a shed request and make its 503 (``OverloadBody`` and ``Retry-After``)."""
    metrics.errors.labels(endpoint, "overloaded").inc()
    metrics.shed.labels(endpoint, exc.reason).inc()
    ms = None if exc.expected_s is None else round(exc.expected_s * 1000.0, 1)
    deadline = None if exc.deadline_s is None else round(exc.deadline_s * 1000.0, 1)
    return ShedError(OverloadBody(detail=str(exc), reason=exc.reason, retry_after_s=exc.retry_after_s,
                                  expected_ms=ms, deadline_ms=deadline))


GAUGE_PERIOD_S = 0.25  # the batch-cost and margin gauges are written at most this often
HEALTH_TIMEOUT_S = 0.5  # /readyz and /metrics wait this long for the state store's health check
_ROUTES = {"/v1/recommend", "/v1/events", "/v1/policy", "/healthz", "/readyz", "/metrics", "/admin/reload"}


def _check_token(expected: str | None, authorization: str | None) -> None:
    """403 when admin is off, 401 unless ``Authorization: Bearer <token>`` matches (constant-time compare)."""
    if expected is None:
        raise HTTPException(403, "admin endpoints are off: start the service with RANKSTACK_ADMIN_TOKEN set")
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected.encode()):
        raise HTTPException(401, "missing or wrong admin token (Authorization: Bearer <token>)",
                            headers={"WWW-Authenticate": "Bearer"})


def _body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI ``requestBody`` of a route that reads its optional JSON body itself (after authentication)."""
    return {"requestBody": {"required": False, "content": {"application/json": {"schema": model.model_json_schema()}}}}


async def _optional_body(request: Request, model: type[M]) -> M | None:
    """The request's JSON body validated as ``model`` (None when empty), with FastAPI's 422 / 400 on bad input."""
    raw = await request.body()
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except RecursionError as exc:
        raise HTTPException(400, "request body is nested too deeply to decode") from exc
    except ValueError as exc:
        raise RequestValidationError([{"type": "json_invalid", "loc": ("body",), "msg": f"JSON decode error: {exc}",
                                       "input": {}}]) from exc
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from exc
