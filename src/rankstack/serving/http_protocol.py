"""uvicorn's httptools protocol with each response sent in one write instead of two.

uvicorn writes a response's status line and headers when the app sends ``http.response.start`` and the body when
it sends ``http.response.body``: two ``send`` system calls and two TCP segments per small JSON response, made
while holding the GIL. Here the connection's transport keeps the writes made during one event-loop step and
sends them together at the end of that step (``loop.call_soon``), so a response leaves in one call; closing the
connection sends what is kept first, aborting it drops it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class CoalescingTransport:
    """Wraps a transport: ``write`` calls in one loop step go out as one ``write``; everything else forwards."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Keep ``data`` for the end of this loop step (the first kept write schedules the flush)."""
        if not data:
            return
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(bytes(data))

    def writelines(self, lines: Any) -> None:
        """Keep each of ``lines``."""
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Send what is kept now, as one write (nothing once the transport is closing)."""
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending = []
        if not self._transport.is_closing():
            self._transport.write(data)

    def get_write_buffer_size(self) -> int:
        """Bytes kept here plus the transport's own buffer."""
        return sum(len(p) for p in self._pending) + self._transport.get_write_buffer_size()

    def write_eof(self) -> None:
        """Send what is kept, then half-close."""
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        """Send what is kept, then close (the transport still drains its buffer before closing)."""
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        """Drop what is kept and abort the connection."""
        self._pending = []
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """:class:`HttpToolsProtocol` over a :class:`CoalescingTransport` (pass as uvicorn's ``http``)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the connection on the wrapped transport."""
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]
