"""Schemathesis fuzzes every operation of the published OpenAPI schema: no input may cause a 5xx.

``RANKSTACK_FUZZ_EXAMPLES=500`` runs a longer fuzz than the default 30 examples per operation.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance, status_code_conformance
from serving_fakes import load_fake, write_fake_artifact

from rankstack.serving import ServiceSettings, create_app
from rankstack.state import SQLiteStateStore


@pytest.fixture
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[schemathesis.BaseSchema]:
    """The schema of a service over the fake artifact and a fresh SQLite store."""
    root: Path = tmp_path_factory.mktemp("fuzz")
    store = SQLiteStateStore(root / "state.db")
    app = create_app(load_fake, store, ServiceSettings(artifact=write_fake_artifact(root / "v1"), state_retry_s=0,
                                                       admin_token="fuzz-admin-token-0123456789"))
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    store.close()


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=int(os.environ.get("RANKSTACK_FUZZ_EXAMPLES", "30")), deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_no_input_causes_a_server_error(case: schemathesis.Case) -> None:
    """No 5xx; every status is documented and every body matches its documented schema."""
    case.call_and_validate(checks=[not_a_server_error, status_code_conformance, response_schema_conformance])
