"""The served artifact is content-addressed: its digest is shown in responses, /readyz and /metrics; an artifact
whose manifest was edited never becomes ready and is refused on reload while the old one keeps serving."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from server_process import ServerProcess
from serving_fakes import TOKEN
from test_pipeline_http import artifact  # noqa: F401  (the trained tiny pipeline artifact, a module fixture)

from rankstack.pipeline.pipeline import Pipeline
from rankstack.serving import ServiceSettings, create_app
from rankstack.serving.loaders import DEFAULT_LOADER
from rankstack.state import SQLiteStateStore

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def edited_copy(original: Path, dest: Path) -> Path:
    """A copy of ``original`` with the exploration epsilon in ``manifest.json`` changed from 0.2 to 0.95."""
    shutil.copytree(original, dest)
    path = dest / "manifest.json"
    text = path.read_text()
    assert text.count('"epsilon": 0.2') == 1
    path.write_text(text.replace('"epsilon": 0.2', '"epsilon": 0.95'))
    return dest


def digest_of(root: Path) -> str:
    """The digest recorded in an artifact's manifest."""
    return str(json.loads((root / "manifest.json").read_text())["digest"])


@pytest.fixture
def client(artifact: Path, tmp_path: Path) -> Iterator[TestClient]:  # noqa: F811
    store = SQLiteStateStore(tmp_path / "state.db")
    settings = ServiceSettings(artifact=artifact, admin_token=TOKEN, deadline_s=30.0)
    with TestClient(create_app(Pipeline.load, store, settings)) as c:
        yield c
    store.close()


def test_the_digest_is_shown_in_responses_readiness_and_metrics(client: TestClient, artifact: Path) -> None:  # noqa: F811
    digest = digest_of(artifact)
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest)
    assert client.post("/v1/recommend", json={"user_id": "user1", "k": 3}).json()["model_digest"] == digest
    ready = client.get("/readyz").json()
    assert (ready["model_version"], ready["model_digest"], ready["workers_serving"]) == ("tiny-0001", digest, None)
    text = client.get("/metrics").text
    assert f'rankstack_model_info{{digest="{digest}",version="tiny-0001"}} 1.0' in text
    reloaded = client.post("/admin/reload", headers=AUTH).json()
    assert (reloaded["version"], reloaded["digest"]) == ("tiny-0001", digest)


def test_a_reload_of_an_edited_artifact_is_refused_and_the_old_one_keeps_serving(
        client: TestClient, artifact: Path, tmp_path: Path) -> None:  # noqa: F811
    edited = edited_copy(artifact, tmp_path / "edited")
    response = client.post("/admin/reload", json={"artifact": str(edited)}, headers=AUTH)
    assert response.status_code == 422
    message = response.json()["message"]
    assert f"{edited / 'manifest.json'}: the manifest was changed after the artifact was written" in message
    assert "still serving 'tiny-0001'" in message
    answer = client.post("/v1/recommend", json={"user_id": "user1", "k": 3})
    assert answer.status_code == 200 and answer.json()["model_digest"] == digest_of(artifact)


@pytest.mark.parametrize("workers", [1, 2])
def test_rankstack_serve_refuses_an_edited_artifact(artifact: Path, tmp_path: Path, workers: int) -> None:  # noqa: F811
    edited = edited_copy(artifact, tmp_path / "edited")
    server = ServerProcess(edited, f"sqlite:{tmp_path / 'state.db'}", tmp_path / "server.log", loader=DEFAULT_LOADER,
                           workers=workers)
    try:
        with pytest.raises(RuntimeError, match="server exited with 2"):
            server.start()
        log = server.log_path.read_text()
        assert "manifest.json: the manifest was changed after the artifact was written" in log, log
        with pytest.raises(httpx.ConnectError):
            httpx.get(server.url + "/readyz", timeout=2)
    finally:
        server.stop()
