"""One write per response: writes in one loop step coalesce; close sends them first, abort drops them; a real
uvicorn server on the protocol answers keep-alive requests with each response in one transport write."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any, ClassVar

import httpx
import uvicorn

from rankstack.serving.http_protocol import CoalescingHttpToolsProtocol, CoalescingTransport


class FakeTransport:
    """Records writes and closes."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = self.aborted = False
        self.extra = {"peername": ("127.0.0.1", 1)}

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def write_eof(self) -> None:
        self.writes.append(b"<eof>")

    def get_write_buffer_size(self) -> int:
        return 7

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.extra.get(name, default)


def run_steps(*steps: Any) -> FakeTransport:
    """Run each step (a callable of the wrapper) in its own loop iteration; returns the fake."""
    fake = FakeTransport()

    async def main() -> None:
        wrapper = CoalescingTransport(fake, asyncio.get_running_loop())  # type: ignore[arg-type]
        for step in steps:
            step(wrapper)
            await asyncio.sleep(0)
            await asyncio.sleep(0)

    asyncio.run(main())
    return fake


def test_writes_in_one_step_leave_as_one() -> None:
    fake = run_steps(lambda t: (t.write(b"head "), t.write(memoryview(b"body")), t.write(b"")),
                     lambda t: t.writelines([b"a", b"b"]))
    assert fake.writes == [b"head body", b"ab"]


def test_close_and_eof_send_what_is_kept_and_abort_drops_it() -> None:
    assert run_steps(lambda t: (t.write(b"last"), t.close())).writes == [b"last"]
    assert run_steps(lambda t: (t.write(b"x"), t.write_eof())).writes == [b"x", b"<eof>"]
    fake = run_steps(lambda t: (t.write(b"gone"), t.abort()))
    assert fake.writes == [] and fake.aborted


def test_buffer_size_counts_kept_bytes_and_other_calls_forward() -> None:
    seen: dict[str, Any] = {}
    run_steps(lambda t: (t.write(b"12345"), seen.update(size=t.get_write_buffer_size(),
                                                        peer=t.get_extra_info("peername"))))
    assert seen == {"size": 5 + 7, "peer": ("127.0.0.1", 1)}


async def small_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A plain ASGI app: a short JSON body after its start message."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json"),
                                                                      (b"content-length", b"12")]})
    await send({"type": "http.response.body", "body": b'{"ok": true}'})


class CountingTransport:
    """Forwards to a real transport, recording each write."""

    writes: ClassVar[list[bytes]] = []

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport

    def write(self, data: bytes) -> None:
        CountingTransport.writes.append(bytes(data))
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CountingProtocol(CoalescingHttpToolsProtocol):
    """The protocol over a transport that counts the writes reaching the socket."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CountingTransport(transport))  # type: ignore[arg-type]


def test_a_uvicorn_server_on_the_protocol_sends_each_response_in_one_write() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(small_app, host="127.0.0.1", port=port, log_level="error",
                                           http=CountingProtocol, lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(3):  # keep-alive: one connection, several responses
                reply = client.get("/")
                assert reply.status_code == 200 and reply.json() == {"ok": True}
    finally:
        server.should_exit = True
        thread.join(timeout=20)
    assert len(CountingTransport.writes) == 3
    assert all(w.startswith(b"HTTP/1.1 200") and w.endswith(b'{"ok": true}') for w in CountingTransport.writes)
