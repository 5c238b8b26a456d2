"""The real Pipeline behind the service: slates over HTTP equal ``Pipeline.recommend`` offline for the same inputs
and state; ``rankstack serve`` loads an artifact; a corrupt artifact is refused on reload."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from server_process import ServerProcess
from serving_fakes import TOKEN, click

from rankstack.pipeline.api import RecommendRequest
from rankstack.pipeline.pipeline import Pipeline
from rankstack.serving import ServiceSettings, create_app
from rankstack.serving.loaders import DEFAULT_LOADER
from rankstack.state import SQLiteStateStore
from rankstack.testing.artifacts import tiny_pipeline_artifact


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained popular + item-kNN pipeline with epsilon-greedy exploration, saved as an artifact."""
    return tiny_pipeline_artifact(tmp_path_factory.mktemp("artifacts") / "tiny-0001")


@pytest.fixture
def served(artifact: Path, tmp_path: Path) -> Iterator[tuple[TestClient, SQLiteStateStore]]:
    store = SQLiteStateStore(tmp_path / "state.db")
    settings = ServiceSettings(artifact=artifact, admin_token=TOKEN, deadline_s=30.0)
    with TestClient(create_app(Pipeline.load, store, settings)) as client:
        yield client, store
    store.close()


REQUESTS: list[dict[str, Any]] = [
    {"user_id": "user1", "k": 5, "request_id": "r1"},
    {"user_id": "user2", "k": 8, "request_id": "r2", "exclude": ["item2", "item5"]},
    {"user_id": "user4", "k": 3, "request_id": "r3"},
    {"user_id": "newcomer", "k": 5, "request_id": "r4"},
    {"user_id": "fresh-only", "k": 4, "request_id": "r5"},
]


def slate(body: dict[str, Any]) -> list[tuple[str, float, float | None]]:
    """(item, score, propensity) of each slot."""
    return [(it["item_id"], round(it["score"], 9), it["propensity"]) for it in body["items"]]


def test_http_slates_equal_offline_slates_for_the_same_state(served: tuple[TestClient, SQLiteStateStore],
                                                             artifact: Path) -> None:
    client, store = served
    events = [click("c1", user="user1", item="item4"), click("c2", user="user1", item="item7"),
              click("c3", user="fresh-only", item="item1"), click("c4", user="user4", item="nope", kind="conversion")]
    ack = client.post("/v1/events", json={"events": events}).json()
    assert ack["new"] == 4 and ack["unknown_items"] == ["nope"]
    offline = Pipeline.load(artifact)
    for body in REQUESTS:
        online = client.post("/v1/recommend", json=body).json()
        [expected] = offline.recommend([RecommendRequest(**body)], store)
        assert slate(online) == slate(expected.model_dump()), body["user_id"]
        assert online["fallback"] == expected.fallback and online["model_version"] == "tiny-0001"
        assert len(online["items"]) == body["k"]
        assert all(0 < it["propensity"] <= 1 for it in online["items"])
    user1 = {it["item_id"] for it in client.post("/v1/recommend", json=REQUESTS[0]).json()["items"]}
    assert not user1 & {"item4", "item7"}  # fresh clicks are not recommended again
    metrics = client.get("/metrics").text  # the service's warm-up kept every known user's candidates
    assert 'rankstack_candidate_cache_lookups_total{result="hit"} 4.0' in metrics  # user1 twice, user2, user4
    assert 'rankstack_candidate_cache_lookups_total{result="miss"} 0.0' in metrics
    assert f"rankstack_candidate_cache_entries {float(len(offline.parts.user_map))}" in metrics
    offline.close()


def test_a_corrupt_artifact_is_refused_and_the_old_one_keeps_serving(
    served: tuple[TestClient, SQLiteStateStore], artifact: Path, tmp_path: Path
) -> None:
    client, _ = served
    broken = tmp_path / "broken"
    shutil.copytree(artifact, broken)
    victim = next(p for p in sorted(broken.rglob("*.safetensors")))
    victim.write_bytes(victim.read_bytes()[:-8] + b"corrupt!")
    auth = {"Authorization": f"Bearer {TOKEN}"}
    response = client.post("/admin/reload", json={"artifact": str(broken)}, headers=auth)
    assert response.status_code == 422
    message = response.json()["message"]
    assert "checksum mismatch" in message and "still serving 'tiny-0001'" in message
    assert client.post("/v1/recommend", json=REQUESTS[0]).status_code == 200
    assert client.get("/readyz").json()["model_version"] == "tiny-0001"


def test_rankstack_serve_loads_the_pipeline_artifact(artifact: Path, tmp_path: Path) -> None:
    server = ServerProcess(artifact, f"sqlite:{tmp_path / 'state.db'}", tmp_path / "server.log", loader=DEFAULT_LOADER)
    server.start()
    try:
        assert httpx.get(server.url + "/readyz").json()["model_version"] == "tiny-0001"
        online = httpx.post(server.url + "/v1/recommend", json=REQUESTS[1]).json()
        offline = Pipeline.load(artifact)
        [expected] = offline.recommend([RecommendRequest(**REQUESTS[1])], SQLiteStateStore(tmp_path / "state.db"))
        assert slate(online) == slate(expected.model_dump())
        offline.close()
    finally:
        server.stop()


def test_two_workers_serve_the_same_pipeline_slates(artifact: Path, tmp_path: Path) -> None:
    server = ServerProcess(artifact, f"sqlite:{tmp_path / 'state.db'}", tmp_path / "server.log", loader=DEFAULT_LOADER,
                           workers=2)
    server.start()
    try:
        server.worker_pids()
        offline = Pipeline.load(artifact)
        [expected] = offline.recommend([RecommendRequest(**REQUESTS[1])], SQLiteStateStore(tmp_path / "state.db"))
        offline.close()
        workers = set()
        with httpx.Client(base_url=server.url, timeout=30, limits=httpx.Limits(max_keepalive_connections=0)) as http:
            for _ in range(30):
                response = http.post("/v1/recommend", json=REQUESTS[1])
                assert slate(response.json()) == slate(expected.model_dump())
                workers.add(response.headers["x-rankstack-worker"])
        assert len(workers) == 2
    finally:
        server.stop()
