"""One write per response: a head goes out with the next write at once (alone at the end of the loop step when no
write follows); close sends it first, abort drops it; a real uvicorn server on the protocol answers keep-alive
requests with each response in one transport write."""

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


def fake_of(wrapper: CoalescingTransport) -> FakeTransport:
    """The fake under a wrapper."""
    return wrapper._transport  # type: ignore[return-value]


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


def test_a_head_goes_out_with_the_next_write_at_once() -> None:
    seen: dict[str, Any] = {}

    def step(t: CoalescingTransport) -> None:
        t.write(b"HTTP/1.1 200 OK\r\n\r\n")
        t.write(memoryview(b"body"))
        seen["at_once"] = list(fake_of(t).writes)  # before the loop step ends
        t.write(b"")
        t.writelines([b"a", b"b"])  # no head held: straight through

    fake = run_steps(step)
    assert seen["at_once"] == [b"HTTP/1.1 200 OK\r\n\r\nbody"]
    assert fake.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody", b"a", b"b"]


def test_a_head_without_a_body_goes_out_at_the_end_of_the_step() -> None:
    seen: dict[str, Any] = {}

    def step(t: CoalescingTransport) -> None:
        t.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        seen["held"] = list(fake_of(t).writes)

    assert run_steps(step).writes == [b"HTTP/1.1 204 No Content\r\n\r\n"] and seen["held"] == []


def test_close_and_eof_send_what_is_held_and_abort_drops_it() -> None:
    head = b"HTTP/1.1 200 OK\r\n\r\n"
    assert run_steps(lambda t: (t.write(head), t.close())).writes == [head]
    assert run_steps(lambda t: (t.write(head), t.write_eof())).writes == [head, b"<eof>"]
    fake = run_steps(lambda t: (t.write(head), t.abort()))
    assert fake.writes == [] and fake.aborted


def test_buffer_size_counts_kept_bytes_and_other_calls_forward() -> None:
    seen: dict[str, Any] = {}
    run_steps(lambda t: (t.write(b"HTTP/"), seen.update(size=t.get_write_buffer_size(),
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
            assert client.head("/", timeout=5).status_code == 200  # a head with no body write still goes out
    finally:
        server.should_exit = True
        thread.join(timeout=20)
    assert len(CountingTransport.writes) == 4
    assert all(w.startswith(b"HTTP/1.1 200") and w.endswith(b'{"ok": true}') for w in CountingTransport.writes[:3])
    assert CountingTransport.writes[3].startswith(b"HTTP/1.1 200") and CountingTransport.writes[3].endswith(b"\r\n\r\n")
