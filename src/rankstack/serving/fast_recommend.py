"""The hot route, ``POST /v1/recommend``, answered at the ASGI level.

FastAPI's routing (dependency resolution, request parsing, response validation and encoding) costs about a
third of a millisecond of CPU per request, as much as the re-rank stage of a 41k-item pipeline. A JSON request
that validates is answered here with the same ``answer`` function the FastAPI route calls, and the response
is encoded once by pydantic-core; anything else — invalid JSON or fields, another content type — is handed to
FastAPI unchanged (the body replayed), so error bodies and the OpenAPI description stay FastAPI's.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from fastapi import HTTPException
from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rankstack.pipeline.api import RecommendRequest, RecommendResponse
from rankstack.serving.schemas import ShedError, UnprocessableError

PATH = "/v1/recommend"
Answer = Callable[[RecommendRequest, float | None], Awaitable[RecommendResponse]]  # (request, arrived at)
ARRIVED = "rankstack.arrived"  # the scope key the middleware sets (perf_counter() when the request reached us)


def response_json(response: RecommendResponse) -> bytes:
    """A response as JSON bytes, serialised by pydantic-core (our own output is not validated again)."""
    return RecommendResponse.__pydantic_serializer__.to_json(response)


def handles(scope: Scope) -> bool:
    """True for ``POST /v1/recommend`` with ``Content-Type: application/json`` exactly."""
    if scope["path"] != PATH or scope["method"] != "POST":
        return False
    return any(name == b"content-type" and value == b"application/json" for name, value in scope["headers"])


async def serve(scope: Scope, receive: Receive, send: Send, app: ASGIApp, answer: Answer) -> None:
    """Answer one recommend request, or pass it to ``app`` when it does not parse and validate."""
    body = await _read_body(receive)
    try:
        request = RecommendRequest.model_validate(json.loads(body))
    except (ValueError, ValidationError, RecursionError):  # FastAPI words the 4xx (deep nesting: 400)
        await app(scope, _replay(body, receive), send)
        return
    try:
        data, status, headers = response_json(await answer(request, scope.get(ARRIVED))), 200, {}
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
