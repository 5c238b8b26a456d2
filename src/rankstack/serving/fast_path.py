"""The hot routes, ``POST /v1/recommend`` and ``POST /v1/events``, answered at the ASGI level.

FastAPI's routing (dependency resolution, request parsing, response validation and encoding) costs about a
third of a millisecond of CPU per request, as much as the re-rank stage of a 41k-item pipeline. A JSON request
that validates is answered here with the same handler the FastAPI route calls, and the response is encoded once
by pydantic-core; anything else — invalid JSON or fields, another content type — is handed to FastAPI unchanged
(the body replayed), so error bodies and the OpenAPI description stay FastAPI's.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException
from pydantic import BaseModel, ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rankstack.serving.schemas import ShedError, UnprocessableError

ARRIVED = "rankstack.arrived"  # the scope key the middleware sets (perf_counter() when the request reached us)
Handler = Callable[[Any, float | None], Awaitable[BaseModel]]  # (validated body, arrived at) -> response model


@dataclass(frozen=True)
class FastRoute:
    """A ``POST path`` whose JSON body validates as ``body`` and is answered by ``handler`` (errors raised as
    ``HTTPException`` / ``ShedError`` / ``UnprocessableError``, as in the FastAPI route)."""

    path: str
    body: type[BaseModel]
    handler: Handler


def response_json(response: BaseModel) -> bytes:
    """A response model as JSON bytes, serialised by pydantic-core (our own output is not validated again)."""
    return type(response).__pydantic_serializer__.to_json(response)


def route_for(scope: Scope, routes: dict[str, FastRoute]) -> FastRoute | None:
    """The fast route of a ``POST`` with ``Content-Type: application/json`` exactly, else None."""
    route = routes.get(scope["path"])
    if route is None or scope["method"] != "POST":
        return None
    if any(name == b"content-type" and value == b"application/json" for name, value in scope["headers"]):
        return route
    return None


async def serve(scope: Scope, receive: Receive, send: Send, app: ASGIApp, route: FastRoute) -> None:
    """Answer one request on ``route``, or pass it to ``app`` when it does not parse and validate."""
    body = await _read_body(receive)
    try:
        request = route.body.model_validate(json.loads(body))
    except (ValueError, ValidationError, RecursionError):  # FastAPI words the 4xx (deep nesting: 400)
        await app(scope, _replay(body, receive), send)
        return
    try:
        data, status, headers = response_json(await route.handler(request, scope.get(ARRIVED))), 200, {}
    except ShedError as exc:
        data, status, headers = exc.body.model_dump_json().encode(), 503, exc.headers
    except HTTPException as exc:
        data, status, headers = json.dumps({"detail": exc.detail}).encode(), exc.status_code, dict(exc.headers or {})
    except UnprocessableError as exc:
        data, status, headers = exc.body.model_dump_json().encode(), 422, {}
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
           *((k.lower().encode(), v.encode()) for k, v in headers.items())]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": data})


async def _read_body(receive: Receive) -> bytes:
    """The whole request body (the size limit is the caller's ``receive``)."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that yields the already-read body once, then defers to the real one (disconnects)."""
    pending = [body]

    async def replay() -> Message:
        if pending:
            return {"type": "http.request", "body": pending.pop(), "more_body": False}
        return await receive()

    return replay
