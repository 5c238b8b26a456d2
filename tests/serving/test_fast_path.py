"""The fast path answers exactly as the FastAPI routes do: same slates and acknowledgements, same errors, same
metrics, for ``/v1/recommend`` and ``/v1/events``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from serving_fakes import click
from test_endpoints import BAD_EVENTS, BAD_RECOMMEND

from rankstack.serving import fast_path

FAST = {"content-type": "application/json"}
ROUTED = {"content-type": "application/json; charset=utf-8"}  # not the fast path's exact type: FastAPI answers


@pytest.fixture
def fast_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The paths the fast path served (its replays to FastAPI included)."""
    calls: list[str] = []
    serve = fast_path.serve

    async def spy(scope: Any, *args: Any) -> None:
        calls.append(scope["path"])
        await serve(scope, *args)

    monkeypatch.setattr(fast_path, "serve", spy)
    yield calls


def _both(client: TestClient, body: Any, path: str = "/v1/recommend") -> tuple[Any, Any]:
    raw = json.dumps(body).encode()
    fast, routed = (client.post(path, content=raw, headers=h) for h in (FAST, ROUTED))
    return fast, routed


def test_a_slate_is_the_same_on_both_paths(client: TestClient, fast_calls: list[str]) -> None:
    body = {"user_id": "u1", "k": 4, "exclude": ["i1"], "request_id": "r-1", "context": {"slot": 2}}
    fast, routed = _both(client, body)
    assert fast_calls == ["/v1/recommend"]
    assert fast.status_code == routed.status_code == 200
    assert fast.headers["content-type"] == routed.headers["content-type"] == "application/json"
    timings = [r.json().pop("stage_ms") for r in (fast, routed)]
    assert timings[0].keys() == timings[1].keys()
    assert {**fast.json(), "stage_ms": None} == {**routed.json(), "stage_ms": None}
    assert [i["item_id"] for i in fast.json()["items"]] == ["i0", "i2", "i3", "i4"]


@pytest.mark.parametrize(("body", "field"), BAD_RECOMMEND)
def test_invalid_requests_get_the_same_422(client: TestClient, fast_calls: list[str], body: Any, field: str) -> None:
    fast, routed = _both(client, body)
    assert fast_calls == ["/v1/recommend"]  # taken by the fast path, then handed to FastAPI to word the 422
    assert fast.status_code == routed.status_code == 422 and fast.json() == routed.json()
    assert field in fast.json()["message"]


@pytest.mark.parametrize("path", ["/v1/recommend", "/v1/events"])
@pytest.mark.parametrize("raw", [b"{not json", b"", b"\xff\xfe", b"NaN"])
def test_malformed_json_gets_the_same_422(client: TestClient, raw: bytes, path: str) -> None:
    fast, routed = (client.post(path, content=raw, headers=h) for h in (FAST, ROUTED))
    assert fast.status_code == routed.status_code == 422 and fast.json() == routed.json()


def test_events_are_acknowledged_alike_on_both_paths(client: TestClient, fast_calls: list[str]) -> None:
    body = {"events": [click("e1"), click("e2", item="nope"), click("e1")]}
    fast = client.post("/v1/events", content=json.dumps(body).encode(), headers=FAST)
    again = client.post("/v1/events", content=json.dumps(body).encode(), headers=ROUTED)
    assert fast_calls == ["/v1/events"]
    assert fast.status_code == again.status_code == 200
    assert fast.json() == {"received": 3, "new": 2, "duplicates": 1, "unknown_items": ["nope"]}
    assert again.json() == {"received": 3, "new": 0, "duplicates": 3, "unknown_items": ["nope"]}  # stored once


@pytest.mark.parametrize(("body", "field"), BAD_EVENTS)
def test_invalid_event_batches_get_the_same_422(client: TestClient, fast_calls: list[str], body: Any,
                                                field: str) -> None:
    fast, routed = _both(client, body, "/v1/events")
    assert fast_calls == ["/v1/events"]
    assert fast.status_code == routed.status_code == 422 and fast.json() == routed.json()
    assert field in fast.json()["message"]


def test_a_future_event_gets_the_same_422_and_is_not_stored(client: TestClient) -> None:
    fast, routed = _both(client, {"events": [click("late", timestamp=4_000_000_000.0)]}, "/v1/events")
    assert fast.status_code == routed.status_code == 422 and fast.json() == routed.json()
    assert "timestamp" in fast.json()["message"]
    stored = client.post("/v1/events", json={"events": [click("late")]})
    assert stored.json()["new"] == 1  # the refused post stored nothing under that id


def test_a_failing_recommender_gets_the_same_503(client: TestClient) -> None:
    client.app.state.slot.current.recommender.fail = True  # type: ignore[attr-defined]
    fast, routed = _both(client, {"user_id": "u1", "k": 2})
    assert fast.status_code == routed.status_code == 503 and fast.json() == routed.json()
    assert "recommender failed" in fast.json()["detail"]


def test_fast_answers_are_timed_under_the_route(client: TestClient) -> None:
    for _ in range(2):
        client.post("/v1/recommend", content=b'{"user_id": "u1", "k": 2}', headers=FAST)
        client.post("/v1/events", content=json.dumps({"events": [click("e1")]}).encode(), headers=FAST)
    text = client.get("/metrics").text
    assert 'rankstack_http_requests_total{endpoint="/v1/recommend",status="200"} 2.0' in text
    assert 'rankstack_http_requests_total{endpoint="/v1/events",status="200"} 2.0' in text
    assert 'rankstack_events_ingested_total{result="duplicate"} 1.0' in text
    assert 'rankstack_stage_duration_seconds_count{stage="ranking"} 2.0' in text
