"""Spread kept-alive connections again once another worker joins (a replacement came up), or when one worker
carries more than its share.

The kernel balances connections, not requests, over the workers' ``SO_REUSEPORT`` sockets: a client that keeps
its connections open never reaches a worker that started after it connected, so after one worker was replaced
the survivors kept all the load while the replacement got only new connections. When another worker joins,
each worker answers the next request on every connection with ``Connection: close`` (each connection once,
within ``WINDOW_S``); the client opens a new connection, which the kernel places on any worker.

Even at the start the kernel's placement is only random: 36 connections of the load generator landed 22 / 14 on
two workers, which then carried 57% and 43% of the requests, and the busier one's core ran out first. So every
``BALANCE_PERIOD_S`` each worker publishes its request rate on the reload group's board and reads the others'
(:meth:`Rebalance.balance`): a worker over ``BALANCE_MARGIN`` above the mean closes as many of its connections
as carry the excess (each at its next response), and the kernel places the clients' new connections anew.
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

WINDOW_S = 10.0
PERIOD_S = 10.0  # connections seen in the last one or two periods count as open (uvicorn closes idle ones in 5 s)
BALANCE_PERIOD_S = 2.0  # how often a worker compares its request rate with the others'
BALANCE_MARGIN = 0.1  # a worker closes connections when its rate is this far above the workers' mean
BALANCE_MIN_RATE = 50.0  # requests a second below which a worker leaves its connections alone
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
        self.requests = 0  # requests seen so far (the balance reads the rate from it)
        self._active: set[tuple[str, int]] = set()  # connections seen since the last balance
        self._excess = 0  # connections still to close for the balance, each at its next response
        self.balance_closes = 0  # connections closed for the balance so far
        self._counted: tuple[int, float] | None = None  # (requests, time) at the last look at the rate

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
        self.requests += 1
        key = (str(client[0]), int(client[1]))
        if key in self._to_close:
            self._to_close.discard(key)
            return now < self._until
        self._recent.add(key)
        if self._excess > 0 and key in self._active:  # a connection of this period (not one just reopened)
            self._excess -= 1
            self.balance_closes += 1
            self._active.discard(key)
            return True
        self._active.add(key)
        return False

    def rate(self, now: float) -> float | None:
        """Requests a second since the last call (None on the first call)."""
        before, self._counted = self._counted, (self.requests, now)
        if before is None:
            return None
        return (self.requests - before[0]) / max(now - before[1], 1e-9)

    def balance(self, own: float, others: list[float], margin: float = BALANCE_MARGIN,
                min_rate: float = BALANCE_MIN_RATE) -> int:
        """Given this worker's request rate ``own`` and the other live workers', close the connections that carry
        this worker's excess over ``mean × (1 + margin)`` (each at its next response); how many. Nothing without
        other workers or below ``min_rate``. Call from any thread, once a period."""
        active, self._active = self._active, set()
        mean = (own + sum(others)) / (1 + len(others))
        if not others or own < min_rate or own <= mean * (1.0 + margin) or not active:
            self._excess = 0
            return 0
        per_connection = own / len(active)
        self._excess = min(len(active) - 1, max(1, int((own - mean) / per_connection)))
        self._active = active  # the connections that may be closed: those that carried this period's load
        return self._excess


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
