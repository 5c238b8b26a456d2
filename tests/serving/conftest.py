"""Fixtures for the service tests: a fake artifact, a SQLite state store, an app and its TestClient."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from serving_fakes import TOKEN, load_fake, write_fake_artifact

from rankstack.serving import ServiceSettings, create_app
from rankstack.state import SQLiteStateStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStateStore]:
    """An empty SQLite state store."""
    s = SQLiteStateStore(tmp_path / "state.db")
    yield s
    s.close()


@pytest.fixture
def client(tmp_path: Path, store: SQLiteStateStore) -> Iterator[TestClient]:
    """The service over the fake v1 artifact, admin token set, no state-retry pause."""
    settings = ServiceSettings(artifact=write_fake_artifact(tmp_path / "v1"), admin_token=TOKEN, state_retry_s=0)
    with TestClient(create_app(load_fake, store, settings)) as c:
        yield c
