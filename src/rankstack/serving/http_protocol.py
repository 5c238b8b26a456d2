"""uvicorn's httptools protocol with each response sent in one write instead of two.

uvicorn writes a response's status line and headers when the app sends ``http.response.start`` and the body when
it sends ``http.response.body``: two ``send`` system calls and two TCP segments per small JSON response, made
while holding the GIL. Here the connection's transport holds back a response head (a write that starts with
``HTTP/``) and sends it together with the next write, at once; a head that no write follows in the same
event-loop step (a response without a body) goes out at the end of that step (``loop.call_soon``). Nothing else
waits: sending at the end of the step instead would let a response sit behind the next micro-batch, which runs
on the loop thread. Closing the connection sends what is held first; aborting it drops it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class CoalescingTransport:
    """Wraps a transport: a response head is held until the next write (or the end of the loop step) and sent
    with it; every other write goes straight through; everything else forwards."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Hold a response head; send anything else at once, after (and with) a held head."""
        if not data:
            return
        chunk = bytes(data)
        if self._held is None and chunk.startswith(b"HTTP/"):
            self._held = chunk
            self._loop.call_soon(self.flush)
            return
        if self._held is not None:
            chunk, self._held = self._held + chunk, None
        if not self._transport.is_closing():
            self._transport.write(chunk)

    def writelines(self, lines: Any) -> None:
        """Write each of ``lines``."""
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Send a held head now (nothing once the transport is closing)."""
        if self._held is None:
            return
        data, self._held = self._held, None
        if not self._transport.is_closing():
            self._transport.write(data)

    def get_write_buffer_size(self) -> int:
        """Bytes held here plus the transport's own buffer."""
        return len(self._held or b"") + self._transport.get_write_buffer_size()

    def write_eof(self) -> None:
        """Send what is held, then half-close."""
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        """Send what is held, then close (the transport still drains its buffer before closing)."""
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        """Drop what is held and abort the connection."""
        self._held = None
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """:class:`HttpToolsProtocol` over a :class:`CoalescingTransport` (pass as uvicorn's ``http``)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the connection on the wrapped transport."""
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]
