"""The serve-load traffic mix: fresh events before recommends, items from the last slate, the tally of a run."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from http_stub import Answer, Stub
from open_loop import TIMEOUT, Pool, arrival_offsets, drive, run
from serve_mix import EVENT, RECOMMEND, Mix, Traffic, overload_figures, summarise, timeline

POPULAR = ["p1", "p2", "p3"]


def slate(user: str, *, stages: dict[str, str] | None = None, fallback: str | None = None) -> bytes:
    items = [{"item_id": f"{user}-item{j}", "score": 1.0} for j in range(5)]
    return json.dumps({"user_id": user, "items": items, "stages": stages or {"retrieval": "ran"},
                       "fallback": fallback}).encode()


async def service(method: str, path: str, body: bytes) -> Answer:
    """Users whose number ends in 1 get a degraded slate, in 2 a 503, in 3 a 500; events are acknowledged."""
    data = json.loads(body)
    if path == "/v1/events":
        return Answer(body=b'{"received":1,"new":1,"duplicates":0,"unknown_items":[]}')
    user = data["user_id"]
    last = user[-1]
    if user.startswith("new-"):
        return Answer(body=slate(user, stages={"retrieval": "degraded"}, fallback="popularity"))
    if last == "1":
        return Answer(body=slate(user, stages={"retrieval": "ran", "ranker": "degraded"}))
    if last == "2":
        return Answer(503, b'{"detail":"overloaded"}', {"Retry-After": "1"})
    if last == "3":
        return Answer(500, b'{"detail":"boom"}')
    return Answer(body=slate(user))


def drive_mix(mix: Mix, rate: float = 400, seconds: float = 0.5) -> tuple[Traffic, list[tuple[str, str, bytes]]]:
    async def main() -> tuple[Traffic, list[tuple[str, str, bytes]]]:
        async with Stub(service) as stub:
            pool = Pool("127.0.0.1", stub.port, timeout_s=2.0)
            offsets = arrival_offsets([(rate, seconds)])
            traffic = Traffic(mix, pool, offsets)
            await drive(offsets, traffic.job)
            pool.close()
            return traffic, stub.seen

    return run(main())


def test_fresh_events_precede_their_recommend_and_use_the_last_slate() -> None:
    mix = Mix(users=5, fresh=0.5, popular_items=POPULAR, popular_p=np.full(3, 1 / 3), seed=1)
    traffic, seen = drive_mix(mix)
    events = [json.loads(b)["events"][0] for m, p, b in seen if p == "/v1/events"]
    recommends = [json.loads(b)["user_id"] for m, p, b in seen if p == "/v1/recommend"]
    assert len(recommends) == 200
    rows = traffic.table()
    assert (rows["kind"] == EVENT).sum() == len(events) == rows["fresh"][rows["kind"] == RECOMMEND].sum()
    assert len(events) == pytest.approx(100, abs=25)
    assert {e["event"] for e in events} == {"click"}
    for e in events:  # the item is popular or one of the first five of a slate served to that user
        assert e["item_id"] in POPULAR or e["item_id"].startswith(e["user_id"] + "-item")
    assert any(e["item_id"] not in POPULAR for e in events)
    assert len({e["event_id"] for e in events}) == len(events)
    order = [(p, json.loads(b)["user_id"] if p == "/v1/recommend" else json.loads(b)["events"][0]["user_id"])
             for _, p, b in seen]
    for at, (path, user) in enumerate(order):  # an event's own recommend comes after it (same user)
        if path == "/v1/events":
            assert ("/v1/recommend", user) in order[at + 1:]


def test_the_tally_counts_shed_errors_and_degraded_slates() -> None:
    traffic, _ = drive_mix(Mix(users=40, seed=2))
    table = traffic.table()
    out = summarise(table, 0.0, 0.5)
    rec = table["kind"] == RECOMMEND
    assert out["requests"] == rec.sum() == 200
    assert out["shed"] == pytest.approx(20, abs=14)  # users ending in 2: one in ten
    assert out["errors"] == out["errors_by_cause"]["http_500"] == pytest.approx(20, abs=14)
    assert out["degraded"] == traffic.reasons["ranker/degraded"] == pytest.approx(20, abs=14)
    assert out["answered"] == 200 - out["shed"] - out["errors"]
    assert out["achieved"] == pytest.approx(out["answered"] / 0.5)
    assert out["p99_ms"] is not None and out["p99_ms"] < 2000


def test_never_seen_users_popularity_fallback_is_cold_not_degraded() -> None:
    traffic, _ = drive_mix(Mix(users=10, unknown=1.0, seed=3), rate=200, seconds=0.2)
    out = summarise(traffic.table(), 0.0, 0.2)
    assert traffic.cold == out["answered"] == 40 and out["degraded"] == 0


def test_mix_refuses_bad_settings() -> None:
    with pytest.raises(ValueError, match="fresh share"):
        Mix(users=3, fresh=1.5, popular_items=POPULAR)
    with pytest.raises(ValueError, match="popular_items"):
        Mix(users=3, fresh=0.5)
    with pytest.raises(ValueError, match="click or impression"):
        Mix(users=3, kind="purchase")


def table(rows: list[tuple[int, float, float, int]]) -> dict[str, np.ndarray]:
    """A run's columns from (kind, scheduled s, ms, status) rows."""
    kind, at, ms, status = (np.asarray(c) for c in zip(*rows, strict=True))
    n = len(rows)
    return {"kind": kind.astype(np.int8), "at": at.astype(float), "ms": ms.astype(float), "e2e_ms": ms.astype(float),
            "status": status.astype(np.int32), "degraded": np.zeros(n, bool), "fresh": np.zeros(n, bool),
            "known": np.ones(n, bool)}


def test_overload_figures_split_the_phases() -> None:
    rows = [(RECOMMEND, t, 5.0, 200) for t in np.arange(0, 10, 0.01)]  # normal
    rows += [(RECOMMEND, t, 80.0 if i % 2 else 1.0, 200 if i % 2 else 503)  # overload: half shed
             for i, t in enumerate(np.arange(10, 15, 0.005))]
    rows += [(RECOMMEND, t, 300.0 if t < 16 else 5.0, 200) for t in np.arange(15, 25, 0.01)]  # slow for 1 s
    rows += [(EVENT, 12.0, 4.0, TIMEOUT)]
    out = overload_figures(table(rows), before_s=10, overload_s=5, after_s=10, threshold_ms=100)
    assert out["requests"] == 1000 and out["shed"] == 500 and out["shed_share"] == 0.5
    assert out["p99_answered_ms"] == 80.0 and out["answered"] == 500
    assert out["recovery_s"] == pytest.approx(1.0)
    assert out["after"]["p99_ms"] == 300.0 and out["after"]["shed"] == 0
    normal = summarise(table(rows), 0, 10)
    assert normal["p99_ms"] == 5.0 and normal["events"]["requests"] == 0
    with_event = summarise(table(rows), 0, 15)
    assert with_event["errors"] == 1 and with_event["errors_by_cause"] == {"event_timeout": 1}


def test_fresh_impressions_instead_of_clicks() -> None:
    mix = Mix(users=5, fresh=1.0, kind="impression", popular_items=POPULAR, popular_p=np.full(3, 1 / 3), seed=4)
    _, seen = drive_mix(mix, rate=200, seconds=0.1)
    kinds = [json.loads(b)["events"][0]["event"] for _, p, b in seen if p == "/v1/events"]
    assert kinds == ["impression"] * 20


def test_a_stamping_mix_stamps_every_request_with_its_start() -> None:
    async def main(mix: Mix) -> tuple[Traffic, list[dict[str, str]], float, float]:
        async with Stub(service) as stub:
            pool = Pool("127.0.0.1", stub.port, timeout_s=2.0)
            offsets = arrival_offsets([(200, 0.25)])
            traffic = Traffic(mix, pool, offsets)
            before = time.time()
            await drive(offsets, traffic.job)
            after = time.time()
            pool.close()
            return traffic, stub.headers, before, after

    mix = Mix(users=5, fresh=0.5, popular_items=POPULAR, popular_p=np.full(3, 1 / 3), seed=5, stamp="X-Request-Start")
    traffic, headers, before, after = run(main(mix))
    assert len(headers) == len(traffic.rows) > 0
    for seen in headers:
        stamp = float(seen["x-request-start"].removeprefix("t="))
        assert before <= stamp <= after  # sent within the run
    _, headers, _, _ = run(main(Mix(users=5, seed=5)))
    assert headers and all("x-request-start" not in seen for seen in headers)


def test_the_timeline_shows_which_seconds_went_wrong() -> None:
    rows = [(RECOMMEND, t, 5.0, 200) for t in np.arange(0, 3, 0.01)]
    rows += [(RECOMMEND, t, 90.0 if i % 3 else 1.0, 200 if i % 3 else 503) for i, t in enumerate(np.arange(3, 4, 0.01))]
    rows += [(RECOMMEND, 4.5, 7.0, TIMEOUT), (EVENT, 4.2, 3.0, 200)]
    windows = timeline(table(rows), 0.0, 5.0)
    assert [w[0] for w in windows] == [0, 1, 2, 3, 4]
    assert windows[0] == [0, 100, 0, 0, 5.0, 5.0]
    assert windows[3][1:4] == [66, 34, 0] and windows[3][4] == 90.0
    assert windows[4] == [4, 0, 0, 1, None, None]  # the event is not counted; the timeout is an error
    assert summarise(table(rows), 0.0, 5.0)["timeline"] == windows


def test_fresh_items_by_popularity_are_the_draws_of_generator_choice() -> None:
    weights = np.random.default_rng(3).random(50)
    items = [f"i{j}" for j in range(50)]
    mix = Mix(users=5, fresh=1.0, popular_items=items, popular_p=weights / weights.sum(), seed=9)
    traffic = Traffic(mix, Pool("127.0.0.1", 9, timeout_s=1.0), np.zeros(1))
    reference = np.random.default_rng(9)
    drawn = [traffic._fresh_item(f"u{n}") for n in range(500)]
    assert drawn == [items[int(reference.choice(50, p=mix.popular_p))] for _ in range(500)]
