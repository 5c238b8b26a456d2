"""Overload: offered three times what it can serve, the service sheds fast (503 + Retry-After), answers what it
admits within the deadline, keeps /healthz quick, loses no acknowledged event, and serves normally again within a
second once the overload stops.

The real server (``python -m rankstack.serving``, one process) runs over the fake artifact, whose pipeline takes
40 ms per batch plus 20 ms per request (``max_batch`` 4: at most 33 requests/s); the load comes from an open-loop
driver on asyncio in the test process (requests start on a fixed schedule whatever the answers, latency counted
from the scheduled start, so a slow server cannot slow the offered load down).
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from server_process import ServerProcess
from serving_fakes import write_fake_artifact

from rankstack.serving.settings import DEFAULT_BATCH_WAIT_MS

# The fake pipeline: a batch of b requests takes 40 ms + b · 20 ms (at most 33 requests/s); the pipeline's time is
# a sleep, so the test's own costs (this driver, parsing and answering requests) stay small on a busy 2-core box.
BATCH_S, PER_REQUEST_S = 0.04, 0.02
MAX_BATCH = 4
FULL_BATCH_S = BATCH_S + MAX_BATCH * PER_REQUEST_S
CAPACITY = MAX_BATCH / FULL_BATCH_S
DEADLINE_S = 0.5
PHASES = [("warm", 0.5 * CAPACITY, 0.5), ("overload", 3 * CAPACITY, 2.0), ("normal", 0.5 * CAPACITY, 1.5)]
EVENT_EVERY = 4  # one event post per this many recommend requests
RECOVERY_S = 1.0  # after the overload ends, every request scheduled this much later gets a 200


@dataclass
class Answer:
    """One request's outcome: what, in which phase, when it was due, how long from then to its answer."""

    kind: str
    phase: str
    due: float
    latency_s: float = 0.0
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    event_id: str = ""
    late_s: float = 0.0  # how late the driver sent it (part of latency_s: the box, not the server)


class Connections:
    """Keep-alive HTTP/1.1 connections to the server, opened whenever none is idle (open loop: never wait for one)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def send(self, method: str, path: str, body: bytes = b"", fresh: bool = False
                   ) -> tuple[int, dict[str, str], bytes]:
        """Send one request and read its answer (status, lower-cased headers, body)."""
        reader, writer = (self.idle.pop() if self.idle and not fresh
                          else await asyncio.open_connection("127.0.0.1", self.port))
        writer.write(f"{method} {path} HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n"
                     f"content-length: {len(body)}\r\n\r\n".encode() + body)
        status = int((await reader.readline()).split()[1])
        headers = {}
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        data = await reader.readexactly(int(headers.get("content-length", "0")))
        if fresh or headers.get("connection") == "close":
            writer.close()
        else:
            self.idle.append((reader, writer))
        return status, headers, data


async def drive(port: int) -> list[Answer]:
    """Run ``PHASES`` open loop: recommends at each phase's rate, an event post after every ``EVENT_EVERY``-th, and
    a /healthz on a new connection every 50 ms throughout."""
    loop = asyncio.get_running_loop()
    connections = Connections(port)
    answers: list[Answer] = []

    async def one(answer: Answer, method: str, path: str, body: bytes) -> None:
        answer.late_s = loop.time() - answer.due
        answer.status, answer.headers, answer.body = await connections.send(method, path, body,
                                                                            fresh=answer.kind == "health")
        answer.latency_s = loop.time() - answer.due
        answers.append(answer)

    schedule: list[tuple[Answer, str, str, bytes]] = []
    start, n = 0.0, 0
    for phase, rate, seconds in PHASES:
        for i in range(int(rate * seconds)):
            due = start + i / rate
            body = json.dumps({"user_id": f"u{n % 50}", "k": 5}).encode()
            schedule.append((Answer("recommend", phase, due), "POST", "/v1/recommend", body))
            if n % EVENT_EVERY == 0:
                event = {"event_id": f"e{n}", "user_id": f"u{n % 50}", "item_id": f"i{n % 7}", "event": "click"}
                schedule.append((Answer("event", phase, due, event_id=f"e{n}"), "POST", "/v1/events",
                                 json.dumps({"events": [event]}).encode()))
            n += 1
        for i in range(int(seconds / 0.05)):
            schedule.append((Answer("health", phase, start + i * 0.05), "GET", "/healthz", b""))
        start += seconds
    schedule.sort(key=lambda item: item[0].due)
    tasks, origin = [], loop.time()
    for answer, method, path, body in schedule:  # each request starts when due (a late start counts as latency)
        answer.due += origin
        await asyncio.sleep(max(answer.due - loop.time(), 0))
        tasks.append(asyncio.ensure_future(one(answer, method, path, body)))
    await asyncio.gather(*tasks)
    return answers


def quantile(values: list[float], q: float) -> float:
    """The ``q`` quantile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def warm_up(port: int) -> None:
    """A few requests and an event first, so that first-call costs do not count as overload."""
    async def run() -> None:
        connections = Connections(port)
        for i in range(5):
            await connections.send("POST", "/v1/recommend", json.dumps({"user_id": f"w{i}"}).encode())
        event = {"event_id": "warm", "user_id": "w0", "item_id": "i1", "event": "click"}
        await connections.send("POST", "/v1/events", json.dumps({"events": [event]}).encode())
    asyncio.run(run())


@pytest.mark.slow
def test_three_times_capacity_is_shed_fast_and_the_service_recovers(tmp_path: Path) -> None:
    artifact = write_fake_artifact(tmp_path / "v1", delay_s=BATCH_S, delay_per_request_s=PER_REQUEST_S)
    server = ServerProcess(artifact, f"sqlite:{tmp_path / 'state.db'}", tmp_path / "server.log",
                           options=["--max-batch", str(MAX_BATCH), "--deadline-ms", str(DEADLINE_S * 1000)])
    server.start()
    try:
        warm_up(server.port)
        answers = asyncio.run(drive(server.port))
        metrics = asyncio.run(Connections(server.port).send("GET", "/metrics"))[2].decode()
    finally:
        server.stop()

    def pick(kind: str, phase: str | None = None, status: int | None = None) -> list[Answer]:
        return [a for a in answers if a.kind == kind and (phase is None or a.phase == phase)
                and (status is None or a.status == status)]

    def ms(values: list[Answer], q: float) -> float:
        return quantile([a.latency_s for a in values] or [0.0], q) * 1000.0

    for phase, _, _ in PHASES:  # shown with pytest -s
        ok, no, health = pick("recommend", phase, 200), pick("recommend", phase, 503), pick("health", phase)
        print(f"{phase}: {len(ok)} x 200 (p50 {ms(ok, .5):.1f}, p99 {ms(ok, .99):.1f} ms), {len(no)} x 503 (p50 "
              f"{ms(no, .5):.1f}, p99 {ms(no, .99):.1f} ms), health p50 {ms(health, .5):.1f}, "
              f"p99 {ms(health, .99):.1f}")
    assert {a.status for a in pick("recommend")} <= {200, 503}
    shed, served = pick("recommend", "overload", 503), pick("recommend", "overload", 200)
    offered = len(pick("recommend", "overload"))
    assert len(shed) > 0.3 * offered and len(served) > 0.15 * offered, (len(shed), len(served), offered)
    # Timing bounds are loose: on the shared 2-core box where this runs, other jobs keep the load average at 10-20
    # and the server gets a fraction of a core (the same load on main took 7-14 s per request, /healthz too).
    # answered: by the deadline counted from the scheduled start (p50; the tail within two deadlines)
    answered = served + pick("recommend", "normal", 200)
    assert ms(answered, 0.5) < DEADLINE_S * 1000 and ms(answered, 0.99) < 2 * DEADLINE_S * 1000
    # refused: with Retry-After and a reason; mostly at once, by the expected wait ("deadline"), several times
    # faster than an answer; the rest after queueing ("expired": the wait grew past the estimate)
    for a in shed:
        body = json.loads(a.body)
        assert int(a.headers["retry-after"]) == body["retry_after_s"] >= 1
        assert body["reason"] in {"deadline", "expired", "queue_full"} and body["detail"]
    at_once = [a for a in shed if json.loads(a.body)["reason"] == "deadline"]
    assert len(at_once) > 0.7 * len(shed)
    # a batch this long runs off the loop's thread, so a refusal does not wait for it (before: p50 42-46 ms)
    assert ms(at_once, 0.5) < FULL_BATCH_S * 1000 / 4 and ms(at_once, 0.5) * 4 < ms(served, 0.5)
    assert ms(shed, 0.99) < (DEADLINE_S + FULL_BATCH_S) * 1000
    # liveness stays quick and green throughout
    health = pick("health")
    assert all(a.status == 200 for a in health)
    assert ms(health, 0.5) < FULL_BATCH_S * 1000 / 2 and ms(health, 0.99) < 2 * DEADLINE_S * 1000
    # recovery: a second after the overload every request is answered, within the deadline (+ slack)
    overload_end = max(a.due for a in pick("recommend", "overload"))
    late = [a for a in pick("recommend", "normal") if a.due > overload_end + RECOVERY_S]
    assert late and all(a.status == 200 for a in late) and ms(late, 0.5) < DEADLINE_S * 1000
    # events: each post is either acknowledged (and then stored) or refused with 503; none acknowledged is lost
    events = pick("event")
    assert {a.status for a in events} <= {200, 503}
    acknowledged = {a.event_id for a in events if a.status == 200}
    assert len(acknowledged) > 0.5 * len(events)
    with sqlite3.connect(tmp_path / "state.db") as db:
        stored = {row[0] for row in db.execute("SELECT event_id FROM events")}
    assert acknowledged <= stored
    assert 'rankstack_requests_shed_total{endpoint="/v1/recommend",reason="deadline"}' in metrics
    assert 'rankstack_recommend_batch_seconds_estimate{batch="full"}' in metrics
    # the batcher's busy share and the fill wait it sets are exported, within their bounds
    busy = [float(v) for v in re.findall(r"^rankstack_batcher_busy_share(?:\{[^}]*\})? (\S+)$", metrics, re.M)]
    fill = [float(v) for v in re.findall(r"^rankstack_batch_fill_wait_seconds(?:\{[^}]*\})? (\S+)$", metrics, re.M)]
    assert busy and fill and all(0.0 <= b <= 1.0 for b in busy)
    assert all(0.0 <= f <= DEFAULT_BATCH_WAIT_MS / 1000 for f in fill)


def test_a_refusal_does_not_wait_out_the_running_batch(tmp_path: Path) -> None:
    """The real server, default loop batcher: while a half-second batch runs, a request that cannot make the
    deadline gets its 503 (``deadline``) and a /healthz its 200 in well under the batch's duration."""
    batch_s = 0.5
    artifact = write_fake_artifact(tmp_path / "v1", delay_s=batch_s)
    server = ServerProcess(artifact, f"sqlite:{tmp_path / 'state.db'}", tmp_path / "server.log",
                           options=["--deadline-ms", "300"])
    server.start()

    async def run() -> list[Answer]:
        connections = Connections(server.port)
        await connections.send("POST", "/v1/recommend", b'{"user_id": "warm"}')  # teaches: 0.5 s a batch
        await asyncio.sleep(0.1)  # else read right after that batch (on the loop's thread) it counts from its start
        loop = asyncio.get_running_loop()

        async def one(kind: str, delay_s: float, method: str, path: str, body: bytes = b"") -> Answer:
            await asyncio.sleep(delay_s)
            answer = Answer(kind, "held", loop.time())
            answer.status, answer.headers, answer.body = await connections.send(method, path, body, fresh=True)
            answer.latency_s = loop.time() - answer.due
            return answer

        return list(await asyncio.gather(one("held", 0.0, "POST", "/v1/recommend", b'{"user_id": "u1"}'),
                                         one("refused", 0.1, "POST", "/v1/recommend", b'{"user_id": "u2"}'),
                                         one("health", 0.15, "GET", "/healthz")))

    try:
        held, refused, health = asyncio.run(run())
    finally:
        server.stop()
    assert held.status == 200 and held.latency_s >= batch_s * 0.9
    assert refused.status == 503 and json.loads(refused.body)["reason"] == "deadline"
    assert int(refused.headers["retry-after"]) >= 1
    # before: the refusal came once the batch had ended (~400 ms later); now at once (a loose bound: busy box)
    assert refused.latency_s < batch_s / 3 and health.status == 200 and health.latency_s < batch_s / 3, (
        refused.latency_s, health.latency_s)
