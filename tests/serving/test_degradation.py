"""A failing state store or recommender: recommend degrades (200, says so), events answer 503, then recovery."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from serving_fakes import click, load_fake, write_fake_artifact

from rankstack.events import Event
from rankstack.serving import ServiceSettings, create_app
from rankstack.state import SQLiteStateStore, StateStoreError


class FlakyStore(SQLiteStateStore):
    """A SQLite store that raises ``StateStoreError`` on every call while ``down`` is set."""

    down = False

    def _check(self) -> None:
        if self.down:
            raise StateStoreError("store is down")

    def add_events(self, events: Sequence[Event]) -> int:
        self._check()
        return super().add_events(events)

    def recent_items(self, user_id: str, n: int, *, events: Sequence[str] = ("click", "conversion")) -> list[str]:
        self._check()
        return super().recent_items(user_id, n, events=events)

    def healthy(self) -> bool:
        return not self.down and super().healthy()


@pytest.fixture
def flaky(tmp_path: Path) -> FlakyStore:
    return FlakyStore(tmp_path / "state.db")


@pytest.fixture
def flaky_client(tmp_path: Path, flaky: FlakyStore) -> Iterator[TestClient]:
    settings = ServiceSettings(artifact=write_fake_artifact(tmp_path / "v1"), state_retry_s=0)
    with TestClient(create_app(load_fake, flaky, settings)) as c:
        yield c


def test_store_down_degrades_recommend_and_refuses_events_then_recovers(
    flaky_client: TestClient, flaky: FlakyStore
) -> None:
    client = flaky_client
    assert client.post("/v1/events", json={"events": [click("e1", item="i0")]}).status_code == 200
    flaky.down = True
    degraded = client.post("/v1/recommend", json={"user_id": "u1", "k": 2})
    assert degraded.status_code == 200
    assert degraded.json()["stages"]["state"] == "degraded" and degraded.json()["fallback"] == "no_fresh_state"
    assert [it["item_id"] for it in degraded.json()["items"]] == ["i0", "i1"]  # history unavailable
    refused = client.post("/v1/events", json={"events": [click("e2", item="i1")]})
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert "not stored" in refused.json()["detail"]
    assert client.get("/readyz").status_code == 503
    text = client.get("/metrics").text
    assert 'rankstack_stage_degradations_total{stage="state",status="degraded"} 1.0' in text
    assert 'rankstack_fallbacks_total{fallback="no_fresh_state"} 1.0' in text
    assert 'rankstack_errors_total{endpoint="/v1/events",kind="state_store"} 1.0' in text
    assert "rankstack_state_store_up 0.0" in text

    flaky.down = False
    assert client.post("/v1/events", json={"events": [click("e2", item="i1")]}).json()["new"] == 1
    healed = client.post("/v1/recommend", json={"user_id": "u1", "k": 2}).json()
    assert healed["stages"]["state"] == "ran" and healed["fallback"] is None
    assert [it["item_id"] for it in healed["items"]] == ["i2", "i3"]
    assert client.get("/readyz").status_code == 200
    assert flaky.stored_event_ids(["e1", "e2"]) == {"e1", "e2"}


def test_breaker_skips_the_store_for_a_while_after_a_failure(tmp_path: Path, flaky: FlakyStore) -> None:
    settings = ServiceSettings(artifact=write_fake_artifact(tmp_path / "v1"), state_retry_s=60)
    with TestClient(create_app(load_fake, flaky, settings)) as client:
        flaky.down = True
        client.post("/v1/recommend", json={"user_id": "u1", "k": 2})
        flaky.down = False
        skipped = client.post("/v1/recommend", json={"user_id": "u1", "k": 2}).json()
        assert skipped["stages"]["state"] == "degraded"
        assert client.post("/v1/events", json={"events": [click("e1")]}).status_code == 200  # a write re-closes it
        assert client.post("/v1/recommend", json={"user_id": "u1", "k": 2}).json()["stages"]["state"] == "ran"


def test_a_failing_recommender_is_503_not_a_crash(client: TestClient) -> None:
    client.app.state.slot.current.recommender.fail = True  # type: ignore[attr-defined]
    response = client.post("/v1/recommend", json={"user_id": "u", "k": 2})
    assert response.status_code == 503 and "recommender failed" in response.json()["detail"]
    assert 'rankstack_errors_total{endpoint="/v1/recommend",kind="recommender"} 1.0' in client.get("/metrics").text
    assert client.get("/healthz").status_code == 200
