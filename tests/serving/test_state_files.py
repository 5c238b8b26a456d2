"""The real server with SQLite state: its file deleted under it, or an unwritable ``-shm`` file at start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from server_process import HERE, ServerProcess
from serving_fakes import click, write_fake_artifact

from rankstack.state import SQLiteStateStore


def test_a_deleted_database_is_answered_with_503_not_acknowledged(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    server = ServerProcess(write_fake_artifact(tmp_path / "v1"), f"sqlite:{db}", tmp_path / "server.log")
    server.start()
    try:
        assert httpx.post(server.url + "/v1/events", json={"events": [click("before")]}).status_code == 200
        for path in tmp_path.glob("state.db*"):  # rm state.db*
            path.unlink()
        refused = httpx.post(server.url + "/v1/events", json={"events": [click("after")]})
        assert refused.status_code == 503 and "not stored" in refused.json()["detail"]
        assert httpx.get(server.url + "/readyz").status_code == 503
        assert "rankstack_state_store_up 0.0" in httpx.get(server.url + "/metrics").text
        served = httpx.post(server.url + "/v1/recommend", json={"user_id": "u1", "k": 2})
        assert served.status_code == 200 and served.json()["stages"]["state"] == "degraded"
    finally:
        server.stop()
    assert "was deleted" in (tmp_path / "server.log").read_text()


def test_an_unusable_shm_file_stops_the_server_before_it_serves(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    SQLiteStateStore(db).close()
    (tmp_path / "state.db-shm").mkdir()  # what a regular user meets as a file it may not write
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    try:
        done = subprocess.run([sys.executable, "-m", "rankstack.serving", str(write_fake_artifact(tmp_path / "v1")),
                               "--state", f"sqlite:{db}", "--loader", "serving_fakes:load_fake", "--port", "9"],
                              env=env, capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("the server started serving on an unusable state store")
    assert done.returncode == 2
    assert "state.db-shm is not a regular file" in done.stderr
