"""Spread kept-alive connections again once another worker joins (a replacement came up).

The kernel balances connections, not requests, over the workers' ``SO_REUSEPORT`` sockets: a client that keeps
its connections open never reaches a worker that started after it connected, so after one worker was replaced
the survivors kept all the load while the replacement got only new connections. When another worker joins,
each worker answers the next request on every connection with ``Connection: close`` (each connection once,
within ``WINDOW_S``); the client opens a new connection, which the kernel places on any worker.
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

WINDOW_S = 10.0
PERIOD_S = 10.0  # connections seen in the last one or two periods count as open (uvicorn closes idle ones in 5 s)
CLOSE = (b"connection", b"close")


class Rebalance:
    """Which connections to close: each connection open when ``trigger`` was called, once, at its next response
    within ``window_s``; connections opened later are left alone (closing them too would push every client to
    the worker that just joined). Only ``trigger`` may be called from another thread."""

    def __init__(self, window_s: float = WINDOW_S, period_s: float = PERIOD_S) -> None:
        self.window_s, self.period_s = window_s, period_s
        self._triggered = self._handled = 0.0
        self._until = self._rotate_at = 0.0
        self._recent: set[tuple[str, int]] = set()
        self._previous: set[tuple[str, int]] = set()
        self._to_close: set[tuple[str, int]] = set()

    def trigger(self) -> None:
        """Another worker joined: close the connections open now, each at its next response."""
        self._triggered = time.monotonic()

    def should_close(self, client: tuple[str, int] | None) -> bool:
        """Note a request on ``client``'s connection; True when its response should close the connection."""
        if client is None:
            return False
        now = time.monotonic()
        if now >= self._rotate_at:
            self._previous, self._recent, self._rotate_at = self._recent, set(), now + self.period_s
        if self._triggered != self._handled:
            self._handled = self._triggered
            self._to_close, self._until = self._recent | self._previous, self._handled + self.window_s
        key = (str(client[0]), int(client[1]))
        if key in self._to_close:
            self._to_close.discard(key)
            return now < self._until
        self._recent.add(key)
        return False


class CloseToRebalance:
    """ASGI middleware: adds ``Connection: close`` to the response when ``Rebalance.should_close`` says so."""

    def __init__(self, app: ASGIApp, rebalance: Rebalance) -> None:
        self.app = app
        self.rebalance = rebalance

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; on a connection to close, mark its response start."""
        if scope["type"] != "http" or not self.rebalance.should_close(scope.get("client")):
            await self.app(scope, receive, send)
            return

        async def closing(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"connection"]
                message = {**message, "headers": [*headers, CLOSE]}
            await send(message)

        await self.app(scope, receive, closing)
