"""Hot reload: token checks, atomic swap with in-flight requests finishing on the old model, bad artifacts refused."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from serving_fakes import TOKEN, write_fake_artifact

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def version(client: TestClient) -> str:
    """The model version the service reports as ready."""
    return str(client.get("/readyz").json()["model_version"])


def test_reload_needs_the_token(client: TestClient, tmp_path: Path) -> None:
    body = {"artifact": str(write_fake_artifact(tmp_path / "v2", "v2"))}
    assert client.post("/admin/reload", json=body).status_code == 401
    wrong = client.post("/admin/reload", json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and "admin token" in wrong.json()["detail"]
    assert client.post("/admin/reload", json=body, headers={"Authorization": TOKEN}).status_code == 401
    assert version(client) == "v1"


def test_reload_is_off_without_a_token(tmp_path: Path, store: Any) -> None:
    from serving_fakes import load_fake

    from rankstack.serving import ServiceSettings, create_app

    settings = ServiceSettings(artifact=write_fake_artifact(tmp_path / "v1"))
    with TestClient(create_app(load_fake, store, settings)) as c:
        response = c.post("/admin/reload", headers=AUTH)
    assert response.status_code == 403 and "RANKSTACK_ADMIN_TOKEN" in response.json()["detail"]


def test_reload_swaps_the_model(client: TestClient, tmp_path: Path) -> None:
    v2 = write_fake_artifact(tmp_path / "v2", "v2", n_items=5)
    response = client.post("/admin/reload", json={"artifact": str(v2)}, headers=AUTH)
    assert response.json() == {"previous_version": "v1", "version": "v2", "artifact": str(v2)}
    assert version(client) == "v2"
    assert client.post("/v1/recommend", json={"user_id": "u", "k": 10}).json()["model_version"] == "v2"
    assert 'rankstack_model_reloads_total{result="ok"} 1.0' in client.get("/metrics").text


def test_reload_without_a_path_reloads_the_current_artifact(client: TestClient, tmp_path: Path) -> None:
    write_fake_artifact(tmp_path / "v1", "v1b")
    assert client.post("/admin/reload", headers=AUTH).json()["version"] == "v1b"


def test_corrupt_or_incompatible_artifacts_are_refused_and_the_old_one_keeps_serving(
    client: TestClient, tmp_path: Path
) -> None:
    corrupt = write_fake_artifact(tmp_path / "corrupt", "v9")
    (corrupt / "manifest.json").write_text('{"format": 1, "vers')
    future = write_fake_artifact(tmp_path / "future", "v9")
    (future / "manifest.json").write_text('{"format": 2, "version": "v9", "n_items": 3}')
    for path in (corrupt, future, tmp_path / "missing"):
        response = client.post("/admin/reload", json={"artifact": str(path)}, headers=AUTH)
        assert response.status_code == 422
        assert str(path) in response.json()["message"] and "still serving 'v1'" in response.json()["message"]
        assert response.json()["detail"][0]["type"] == "artifact_refused"
        assert client.post("/v1/recommend", json={"user_id": "u", "k": 2}).json()["model_version"] == "v1"
    assert 'rankstack_model_reloads_total{result="refused"} 3.0' in client.get("/metrics").text


def test_in_flight_requests_finish_on_the_old_model(client: TestClient, tmp_path: Path) -> None:
    slow = write_fake_artifact(tmp_path / "slow", "slow", delay_s=0.5)
    assert client.post("/admin/reload", json={"artifact": str(slow)}, headers=AUTH).status_code == 200
    old = client.app.state.slot.current.recommender  # type: ignore[attr-defined]
    old.started.clear()
    results: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: results.update(
        r=client.post("/v1/recommend", json={"user_id": "u", "k": 2})))
    worker.start()
    assert old.started.wait(5)
    fast = write_fake_artifact(tmp_path / "fast", "fast")
    assert client.post("/admin/reload", json={"artifact": str(fast)}, headers=AUTH).json()["version"] == "fast"
    worker.join(5)
    assert results["r"].status_code == 200 and results["r"].json()["model_version"] == "slow"
    assert client.post("/v1/recommend", json={"user_id": "u", "k": 2}).json()["model_version"] == "fast"


def test_the_replaced_model_is_closed_after_its_last_request(client: TestClient, tmp_path: Path) -> None:
    slot = client.app.state.slot  # type: ignore[attr-defined]
    first = slot.current.recommender
    closed: list[str] = []
    first.close = lambda: closed.append("v1")
    with slot.use():
        client.post("/admin/reload", json={"artifact": str(write_fake_artifact(tmp_path / "v2", "v2"))}, headers=AUTH)
        assert closed == []  # a request still runs on v1
    assert closed == ["v1"]
