"""A tiny HTTP/1.1 server on loopback for the load generator's tests, run on the test's own event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httptools


@dataclass
class Answer:
    """What the stub answers: status, body, extra headers; ``close`` drops the connection without answering."""

    status: int = 200
    body: bytes = b"{}"
    headers: dict[str, str] = field(default_factory=dict)
    close: bool = False


Handler = Callable[[str, str, bytes], Awaitable[Answer]]  # (method, path, body) -> answer


class _Conn(asyncio.Protocol):
    def __init__(self, handler: Handler, seen: list[tuple[str, str, bytes]], headers: list[dict[str, str]]) -> None:
        self.handler, self.seen, self.headers_seen = handler, seen, headers
        self.parser = httptools.HttpRequestParser(self)
        self.url, self.body = b"", b""
        self.headers: dict[str, str] = {}
        self.queue: asyncio.Queue[tuple[str, str, bytes] | None] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.task = asyncio.get_running_loop().create_task(self._serve())

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.queue.put_nowait(None)

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode().lower()] = value.decode()

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        request = (self.parser.get_method().decode(), self.url.decode(), self.body)
        self.url, self.body = b"", b""
        self.seen.append(request)
        self.headers_seen.append(self.headers)
        self.headers = {}
        self.queue.put_nowait(request)

    async def _serve(self) -> None:  # answers in order, one at a time (HTTP/1.1 without pipelining tricks)
        while (request := await self.queue.get()) is not None:
            answer = await self.handler(*request)
            if answer.close:
                self.transport.abort()
                return
            head = [f"HTTP/1.1 {answer.status} X", f"Content-Length: {len(answer.body)}",
                    "Content-Type: application/json", *(f"{k}: {v}" for k, v in answer.headers.items())]
            self.transport.write(("\r\n".join(head) + "\r\n\r\n").encode() + answer.body)
            if answer.headers.get("Connection") == "close":
                self.transport.close()
                return


class Stub:
    """``async with Stub(handler) as stub``: listens on ``stub.port``; ``stub.seen`` lists the requests in order,
    ``stub.headers`` their headers (lower-cased names)."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.seen: list[tuple[str, str, bytes]] = []
        self.headers: list[dict[str, str]] = []
        self.conns: list[_Conn] = []
        self.port = 0

    async def __aenter__(self) -> Stub:
        def make() -> _Conn:
            conn = _Conn(self.handler, self.seen, self.headers)
            self.conns.append(conn)
            return conn

        self.server = await asyncio.get_running_loop().create_server(make, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        for conn in self.conns:
            if conn.task is not None:
                conn.task.cancel()
            conn.transport.abort()
