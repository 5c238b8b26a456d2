"""Pure ASGI middleware: request-size limit (413) and per-endpoint latency / status metrics, in front of FastAPI.

``ServiceApp`` runs the service's own layers before FastAPI's middleware stack (error middleware, native
telemetry, body limit, exception handlers) instead of inside it, so the hot JSON posts answered by the fast path
pay for none of it; every other request goes through that stack unchanged."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rankstack.serving import fast_path
from rankstack.serving.fast_path import ARRIVED, FastRoute
from rankstack.serving.prometheus import ServiceMetrics
from rankstack.serving.request_start import upstream_wait_s

WORKER_HEADER = b"x-rankstack-worker"


class _BodyTooLarge(Exception):
    """Raised inside ``receive`` when a streamed body passes the limit."""


def _error_message(status: int, detail: str) -> tuple[Message, Message]:
    """The two ASGI messages of a small JSON error response."""
    body = json.dumps({"detail": detail}).encode()
    start: Message = {"type": "http.response.start", "status": status,
                      "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]}
    return start, {"type": "http.response.body", "body": body}


class ServiceApp(FastAPI):
    """FastAPI whose HTTP requests pass ``front`` (the service's middleware, set once the app is built) before
    FastAPI's own stack, which ``front`` reaches as :meth:`framework`; lifespan and other traffic go straight in."""

    front: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.front is not None and scope["type"] == "http":
            await self.front(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    async def framework(self, scope: Scope, receive: Receive, send: Send) -> None:
        """FastAPI's own handling of a request (its middleware stack, routing and exception handlers)."""
        await super().__call__(scope, receive, send)


class ServiceMiddleware:
    """Refuses bodies over ``max_body_bytes`` and times every request under its route template; with ``worker``
    set, every response names the worker process that answered (``X-Rankstack-Worker``); JSON posts to
    ``fast_routes`` take the fast path (``rankstack.serving.fast_path``); with ``request_start_header`` named, a
    request stamped by a front proxy counts its deadline from that stamp (``rankstack.serving.request_start``)."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics, max_body_bytes: int, worker: str | None = None,
                 fast_routes: Sequence[FastRoute] = (), request_start_header: str | None = None) -> None:
        self.app = app
        self.start_header = None if request_start_header is None else request_start_header.lower().encode("latin-1")
        self.fast_routes = {route.path: route for route in fast_routes}
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.worker_header = None if worker is None else (WORKER_HEADER, worker.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Wrap one HTTP request; other ASGI traffic passes through."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        scope[ARRIVED] = t0 if self.start_header is None else self._arrived(scope, t0)
        status = {"code": 500, "started": False, "too_large": False, "refused": False}
        limit = self.max_body_bytes
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                status["too_large"] = True
                raise _BodyTooLarge
            return message

        async def forward(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"], status["started"] = message["status"], True
                if self.worker_header is not None:
                    message = {**message, "headers": [*message.get("headers", []), self.worker_header]}
            await send(message)

        async def too_large() -> None:
            status["refused"] = True
            for message in _error_message(413, f"request body larger than {limit} bytes"):
                await forward(message)

        async def tracking_send(message: Message) -> None:
            if not status["too_large"]:
                await forward(message)
            elif message["type"] == "http.response.start":  # the app answered our exception (FastAPI: 400)
                await too_large()

        try:
            declared = _content_length(scope)
            if declared is not None and declared > limit:
                raise _BodyTooLarge
            fast = fast_path.route_for(scope, self.fast_routes) if self.fast_routes else None
            if fast is not None:
                scope.setdefault("rankstack.endpoint", fast.path)
                await fast_path.serve(scope, limited_receive, tracking_send, self.app, fast)
            else:
                await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if status["refused"]:  # the app's error answer to our exception was already turned into the 413
                return
            if status["started"]:
                raise
            await too_large()
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or scope.get("rankstack.endpoint") or "unmatched"
            metrics = self.metrics
            metrics.child(metrics.request_seconds, endpoint, scope["method"]).observe(time.perf_counter() - t0)
            metrics.child(metrics.requests, endpoint, str(status["code"])).inc()

    def _arrived(self, scope: Scope, t0: float) -> float:
        """``t0`` moved back by the wait the request's stamp header reports (recorded; a bad stamp is counted and
        ignored)."""
        for name, value in scope["headers"]:
            if name == self.start_header:
                wait = upstream_wait_s(value, time.time())
                if wait is None:
                    self.metrics.request_start_invalid.inc()
                    return t0
                self.metrics.upstream_wait.observe(wait)
                return t0 - wait
        return t0


def _content_length(scope: Scope) -> int | None:
    """The declared Content-Length, or None when absent or unparsable (then the stream is counted)."""
    headers: Any = scope.get("headers") or []
    for name, value in headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
