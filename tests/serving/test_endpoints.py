"""The service's endpoints over a fake recommender and a real SQLite store: happy paths, 422s, idempotency, metrics."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from serving_fakes import click, load_fake, write_fake_artifact

from rankstack.serving import ServiceSettings, create_app
from rankstack.serving.admission import OverloadedError
from rankstack.serving.batcher import LoopBatcher
from rankstack.serving.schemas import MAX_EVENTS_PER_BATCH
from rankstack.state import SQLiteStateStore
from rankstack.state.shared import StateStoreError


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "model_version": None, "model_digest": None,
                                             "artifact": None, "state_store": None, "workers_serving": None,
                                             "workers_expected": None}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["model_version"] == "v1" and ready.json()["state_store"] == "ok"


def test_recommend_returns_a_scored_slate(client: TestClient) -> None:
    body = client.post("/v1/recommend", json={"user_id": "u1", "k": 3}).json()
    assert [it["item_id"] for it in body["items"]] == ["i0", "i1", "i2"]
    assert all(it["propensity"] == 1.0 and it["score"] > 0 for it in body["items"])
    assert len(body["request_id"]) == 32 and body["model_version"] == "v1"
    assert body["stages"] == {"retrieval": "ran", "ranking": "ran", "reranking": "ran", "state": "ran"}
    assert body["fallback"] is None and "state" in body["stage_ms"]


def test_the_deadline_counts_from_arrival(client: TestClient) -> None:
    client.post("/v1/recommend", json={"user_id": "u1", "k": 1})
    deadline = client.app.state.slot.current.recommender.last_deadline_s  # type: ignore[attr-defined]
    assert deadline is not None and 0 < deadline <= 0.1  # the service's 100 ms budget less the queue wait


def test_recommend_echoes_request_id_and_honours_exclusions(client: TestClient) -> None:
    body = client.post("/v1/recommend", json={"user_id": "u1", "k": 2, "exclude": ["i0"], "request_id": "r-1",
                                              "context": {"placement": "home", "slot": 2}}).json()
    assert body["request_id"] == "r-1"
    assert [it["item_id"] for it in body["items"]] == ["i1", "i2"]


def test_a_click_is_seen_by_the_next_request(client: TestClient) -> None:
    ack = client.post("/v1/events", json={"events": [click("e1", item="i0"), click("e2", item="i2")]})
    assert ack.status_code == 200
    items = [it["item_id"] for it in client.post("/v1/recommend", json={"user_id": "u1", "k": 3}).json()["items"]]
    assert items == ["i1", "i3", "i4"]


def test_events_are_idempotent(client: TestClient, store: SQLiteStateStore) -> None:
    batch = {"events": [click("e1", kind="impression"), click("e2", kind="click"), click("e1", kind="impression")]}
    first = client.post("/v1/events", json=batch).json()
    assert first == {"received": 3, "new": 2, "duplicates": 1, "unknown_items": []}
    again = client.post("/v1/events", json=batch).json()
    assert again == {"received": 3, "new": 0, "duplicates": 3, "unknown_items": []}
    assert store.bandit_stats(["i0"]) == {"i0": (1.0, 1.0)}


def test_an_event_post_after_shutdown_gets_503_and_nothing_is_stored(tmp_path: Path,
                                                                     store: SQLiteStateStore) -> None:
    """Once the app has stopped (its event writer closed), a post is refused with Retry-After, not a 500."""
    app = create_app(load_fake, store, ServiceSettings(artifact=write_fake_artifact(tmp_path / "v1")))
    with TestClient(app) as running:
        assert running.post("/v1/events", json={"events": [click("before")]}).status_code == 200
    late = TestClient(app).post("/v1/events", json={"events": [click("after")]})  # no lifespan: still stopped
    assert late.status_code == 503 and late.headers["retry-after"] == "1"
    assert store.stored_event_ids(["before", "after"]) == {"before"}


def test_unknown_items_are_stored_and_reported(client: TestClient, store: SQLiteStateStore) -> None:
    ack = client.post("/v1/events", json={"events": [click("e1", item="nope"), click("e2", item="i1"),
                                                     click("e3", item="gone", kind="conversion", value=3.5)]}).json()
    assert ack["new"] == 3 and ack["unknown_items"] == ["gone", "nope"]
    assert store.stored_event_ids(["e1", "e3"]) == {"e1", "e3"}
    assert "rankstack_events_unknown_items_total 2.0" in client.get("/metrics").text


BAD_RECOMMEND: list[tuple[Any, str]] = [
    ({"k": 3}, "user_id"),
    ({"user_id": "", "k": 3}, "user_id"),
    ({"user_id": "u", "k": 0}, "k"),
    ({"user_id": "u", "k": 501}, "k"),
    ({"user_id": "u", "k": "ten"}, "k"),
    ({"user_id": "u", "colour": "red"}, "colour"),
    ({"user_id": "u", "exclude": [f"i{i}" for i in range(10_001)]}, "exclude"),
    ({"user_id": "u", "context": {"nested": {"a": 1}}}, "context"),
    ({"user_id": "u" * 257}, "user_id"),
    ([{"user_id": "u"}], "body"),
]


@pytest.mark.parametrize(("body", "field"), BAD_RECOMMEND)
def test_bad_recommend_requests_get_422_naming_the_field(client: TestClient, body: Any, field: str) -> None:
    response = client.post("/v1/recommend", json=body)
    assert response.status_code == 422
    assert field in response.json()["message"]


BAD_EVENTS: list[tuple[Any, str]] = [
    ({"events": []}, "events"),
    ({"events": [click(str(i)) for i in range(MAX_EVENTS_PER_BATCH + 1)]}, "events"),
    ({"events": [{**click("e1"), "event": "purchase"}]}, "event"),
    ({"events": [{**click("e1"), "propensity": 0}]}, "propensity"),
    ({"events": [{k: v for k, v in click("e1").items() if k != "event_id"}]}, "event_id"),
    ({"events": [{**click("e1"), "extra": 1}]}, "extra"),
    ({"event": click("e1")}, "events"),
    ({"events": [{**click("e1"), "value": False}]}, "value must be a number"),
]


@pytest.mark.parametrize(("body", "field"), BAD_EVENTS)
def test_bad_event_batches_get_422_naming_the_field(client: TestClient, body: Any, field: str) -> None:
    response = client.post("/v1/events", json=body)
    assert response.status_code == 422
    assert field in response.json()["message"]


@pytest.mark.parametrize("raw", [b"{not json", b'{"events": [{"event_id": "e", "user_id": "u", "item_id": "i", '
                                              b'"event": "click", "value": NaN}]}'])
def test_malformed_or_non_finite_json_is_422(client: TestClient, raw: bytes) -> None:
    response = client.post("/v1/events", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422 and response.json()["message"]


def test_oversized_body_is_413(client: TestClient) -> None:
    response = client.post("/v1/recommend", content=b"{" + b" " * 1_100_000 + b"}",
                           headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert "larger than" in response.json()["detail"]


def test_metrics_expose_latency_stages_events_and_errors(client: TestClient) -> None:
    client.post("/v1/recommend", json={"user_id": "u1", "k": 3})
    client.post("/v1/recommend", json={"user_id": "u1", "k": 0})
    client.post("/v1/events", json={"events": [click("e1"), click("e1")]})
    text = client.get("/metrics").text
    assert 'rankstack_http_request_duration_seconds_bucket{endpoint="/v1/recommend",le="0.01",method="POST"}' in text
    assert 'rankstack_stage_duration_seconds_count{stage="ranking"} 1.0' in text
    assert 'rankstack_stage_duration_seconds_count{stage="state"} 1.0' in text
    assert 'rankstack_events_ingested_total{result="new"} 1.0' in text
    assert 'rankstack_events_ingested_total{result="duplicate"} 1.0' in text
    assert 'rankstack_errors_total{endpoint="/v1/recommend",kind="invalid_input"} 1.0' in text
    assert 'rankstack_http_requests_total{endpoint="/v1/recommend",status="422"} 1.0' in text
    assert "rankstack_state_store_up 1.0" in text


def test_metrics_count_state_cache_lookups_from_when_the_model_serves(client: TestClient) -> None:
    """Lookups the recommender counted before it served (the load's warm-up request) are not counted; each batch's
    are, as it ends; the cache's entries include the warm-up's."""
    metrics = client.get("/metrics").text
    assert 'rankstack_state_cache_lookups_total{result="hit"} 0.0' in metrics
    assert 'rankstack_state_cache_lookups_total{result="miss"} 0.0' in metrics
    for user in ("u1", "u1", "u2", "u1"):
        assert client.post("/v1/recommend", json={"user_id": user, "k": 3}).status_code == 200
    metrics = client.get("/metrics").text
    assert 'rankstack_state_cache_lookups_total{result="hit"} 2.0' in metrics
    assert 'rankstack_state_cache_lookups_total{result="miss"} 2.0' in metrics
    assert "rankstack_state_cache_entries 3.0" in metrics


def test_openapi_is_published(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert {"/v1/recommend", "/v1/events", "/healthz", "/readyz", "/metrics", "/admin/reload"} <= set(spec["paths"])
    assert spec["components"]["schemas"]["RecommendRequest"]["properties"]["k"]["maximum"] == 500


def test_docs_page_works_offline(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "://" not in page.text  # nothing loaded from elsewhere (FastAPI's page pulls Swagger UI from a CDN)
    assert 'href="/openapi.json"' in page.text
    for path in ("/v1/recommend", "/v1/events", "/admin/reload"):
        assert f"<code>{path}</code>" in page.text
    assert "RecommendRequest" in page.text and "InvalidBody" in page.text
    assert client.get("/redoc").status_code == 404  # ReDoc would be blank offline too


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8"])  # both paths
def test_a_shed_recommend_is_a_quick_503_with_retry_after_and_a_reason(client: TestClient, content_type: str,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    async def overloaded(self: LoopBatcher, request: Any, arrived_at: float | None = None) -> Any:
        raise OverloadedError("overloaded: too many ahead", reason="deadline", retry_after_s=2, expected_s=0.2345,
                              deadline_s=0.1)

    monkeypatch.setattr(LoopBatcher, "answer", overloaded)
    response = client.post("/v1/recommend", content=b'{"user_id": "u1"}', headers={"content-type": content_type})
    assert response.status_code == 503 and response.headers["retry-after"] == "2"
    assert response.json() == {"detail": "overloaded: too many ahead", "reason": "deadline", "retry_after_s": 2,
                               "expected_ms": 234.5, "deadline_ms": 100.0}
    metrics = client.get("/metrics").text
    assert 'rankstack_requests_shed_total{endpoint="/v1/recommend",reason="deadline"} 1.0' in metrics
    assert 'rankstack_errors_total{endpoint="/v1/recommend",kind="overloaded"} 1.0' in metrics


def _held_store(tmp_path: Path) -> tuple[SQLiteStateStore, threading.Event, threading.Event]:
    """A SQLite store whose writes wait for ``release`` (``entered`` is set once one is waiting)."""
    store = SQLiteStateStore(tmp_path / "state.db")
    entered, release = threading.Event(), threading.Event()
    add_events = store.add_events

    def slow_add(events: Any) -> int:
        entered.set()
        release.wait(10)
        return add_events(events)

    store.add_events = slow_add  # type: ignore[method-assign]
    return store, entered, release


def _post_while_one_is_held(http: TestClient, entered: threading.Event, release: threading.Event,
                            held_s: float = 0.0, headers: dict[str, str] | None = None) -> tuple[Any, Any]:
    """Post event "a" on a thread, and once its write is held (plus ``held_s``) post event "b"; then release the
    write. The two answers, first and second."""
    first: list[Any] = []
    thread = threading.Thread(target=lambda: first.append(http.post("/v1/events", json={"events": [click("a")]})))
    thread.start()
    assert entered.wait(10)
    time.sleep(held_s)
    second = http.post("/v1/events", json={"events": [click("b")]}, headers=headers)
    release.set()
    thread.join(10)
    return first[0], second


def _stored_ids(tmp_path: Path) -> list[str]:
    """The event ids in the state store's file, sorted."""
    with sqlite3.connect(tmp_path / "state.db") as db:
        return sorted(row[0] for row in db.execute("SELECT event_id FROM events"))


def test_event_posts_past_max_queue_are_refused_and_nothing_is_acknowledged_unstored(tmp_path: Path) -> None:
    store, entered, release = _held_store(tmp_path)
    settings = ServiceSettings(artifact=write_fake_artifact(tmp_path / "v1"), max_queue=1)
    with TestClient(create_app(load_fake, store, settings)) as http:
        first, refused = _post_while_one_is_held(http, entered, release)  # the first post holds the one place
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert refused.json()["reason"] == "queue_full"
        assert first.status_code == 200 and first.json()["new"] == 1
        retried = http.post("/v1/events", json={"events": [click("b")]})  # the client's retry is stored
        assert retried.status_code == 200 and retried.json()["new"] == 1
    store.close()
    assert _stored_ids(tmp_path) == ["a", "b"]


def test_event_posts_are_refused_while_the_oldest_in_flight_is_past_the_event_deadline(tmp_path: Path) -> None:
    store, entered, release = _held_store(tmp_path)
    settings = ServiceSettings(artifact=write_fake_artifact(tmp_path / "v1"), event_deadline_s=0.05)
    with TestClient(create_app(load_fake, store, settings)) as http:
        # the first post has been in flight past the 50 ms event deadline when the second comes (fast path)
        first, refused = _post_while_one_is_held(http, entered, release, held_s=0.1,
                                                 headers={"content-type": "application/json"})
        assert refused.status_code == 503 and int(refused.headers["retry-after"]) >= 1
        assert refused.json()["reason"] == "deadline" and refused.json()["deadline_ms"] == 50.0
        assert first.status_code == 200 and first.json()["new"] == 1
        retried = http.post("/v1/events", json={"events": [click("b")]})  # the store keeps up again: stored
        assert retried.status_code == 200 and retried.json()["new"] == 1
        metrics = http.get("/metrics").text
        assert 'rankstack_requests_shed_total{endpoint="/v1/events",reason="deadline"} 1.0' in metrics
    store.close()
    assert _stored_ids(tmp_path) == ["a", "b"]


def _queue_behind_a_held_write(http: TestClient, entered: threading.Event, release: threading.Event,
                               ids: list[str]) -> tuple[Any, list[Any]]:
    """Post "a" and hold its write; post one event per id in ``ids`` on threads and wait until all are queued
    behind it; release. The first answer and the queued posts' answers, in ``ids`` order."""
    answers: dict[int, Any] = {}

    def post(at: int, event_id: str) -> None:
        answers[at] = http.post("/v1/events", json={"events": [click(event_id)]})

    threads = [threading.Thread(target=post, args=(-1, "a"))]
    threads[0].start()
    assert entered.wait(10)
    threads += [threading.Thread(target=post, args=(at, event_id)) for at, event_id in enumerate(ids)]
    for thread in threads[1:]:
        thread.start()
    writer = http.app.state.writer  # type: ignore[attr-defined]
    deadline = time.monotonic() + 10
    while writer.pending() < len(ids) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert writer.pending() == len(ids)
    release.set()
    for thread in threads:
        thread.join(10)
    return answers[-1], [answers[at] for at in range(len(ids))]


def test_posts_queued_behind_a_write_share_one_durable_transaction(tmp_path: Path) -> None:
    store, entered, release = _held_store(tmp_path)
    groups: list[int] = []
    write_many = store.add_event_batches

    def spy(batches: Any) -> list[int]:
        groups.append(len(batches))
        return write_many(batches)

    store.add_event_batches = spy  # type: ignore[method-assign]
    settings = ServiceSettings(artifact=write_fake_artifact(tmp_path / "v1"))
    with TestClient(create_app(load_fake, store, settings)) as http:
        first, queued = _queue_behind_a_held_write(http, entered, release, ["b", "c", "b"])
        assert first.status_code == 200 and groups == [3]
        assert [r.status_code for r in queued] == [200] * 3
        assert sorted((r.json()["new"], r.json()["duplicates"]) for r in queued) == [(0, 1), (1, 0), (1, 0)]
    store.close()
    assert _stored_ids(tmp_path) == ["a", "b", "c"]


def test_a_failed_group_write_answers_each_post_503_and_stores_none_of_them(tmp_path: Path) -> None:
    store, entered, release = _held_store(tmp_path)

    def failing(batches: Any) -> list[int]:
        raise StateStoreError("SQLite state store: database or disk is full")

    store.add_event_batches = failing  # type: ignore[method-assign]
    settings = ServiceSettings(artifact=write_fake_artifact(tmp_path / "v1"))
    with TestClient(create_app(load_fake, store, settings)) as http:
        first, queued = _queue_behind_a_held_write(http, entered, release, ["b", "c"])
        assert first.status_code == 200
        assert [r.status_code for r in queued] == [503, 503] and all(r.headers["retry-after"] == "1" for r in queued)
        metrics = http.get("/metrics").text
        assert 'rankstack_errors_total{endpoint="/v1/events",kind="state_store"} 2.0' in metrics
    store.close()
    assert _stored_ids(tmp_path) == ["a"]
