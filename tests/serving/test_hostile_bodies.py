"""Hostile and malformed bodies on every endpoint, through both request paths: a 4xx with a JSON error, never a 5xx.

``application/json`` exactly takes the fast path (``serving/fast_path.py``); with a charset the
same body goes through FastAPI. Both must answer alike.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from server_process import ServerProcess
from serving_fakes import TOKEN, click, write_fake_artifact

FAST, FASTAPI = "application/json", "application/json; charset=utf-8"
ENDPOINTS = ["/v1/recommend", "/v1/events", "/admin/reload"]
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def nested(depth: int) -> str:
    """A recommend-shaped body whose ``context`` is a list nested ``depth`` deep."""
    return '{"user_id": "42", "context": ' + "[" * depth + "]" * depth + "}"


def event(**fields: object) -> str:
    """An events body of one click with ``fields`` replaced (values given as raw JSON text)."""
    base = {"event_id": '"e1"', "user_id": '"u1"', "item_id": '"i1"', "event": '"click"', **fields}
    return '{"events": [{' + ", ".join(f'"{k}": {v}' for k, v in base.items()) + "}]}"


# (endpoint, raw body, the field the 422 must name); the typed cases must be refused, never coerced
TYPED: list[tuple[str, str, str]] = [
    ("/v1/recommend", '{"user_id": "u", "k": true}', "k"),
    ("/v1/recommend", '{"user_id": "u", "k": false}', "k"),
    ("/v1/recommend", '{"user_id": "u", "k": "5"}', "k"),
    ("/v1/recommend", '{"user_id": "u", "k": 5.5}', "k"),
    ("/v1/recommend", '{"user_id": "u", "k": 1e400}', "k"),
    ("/v1/recommend", '{"user_id": "u", "k": 100000000000000000000000000000}', "k"),
    ("/v1/recommend", '{"user_id": 42}', "user_id"),
    ("/v1/recommend", '{"user_id": "u", "context": {"a": NaN}}', "context"),
    ("/v1/recommend", '{"user_id": "u", "context": {"a": Infinity}}', "context"),
    ("/v1/recommend", '{"user_id": "u", "context": {"a": -Infinity}}', "context"),
    ("/v1/recommend", '{"user_id": "u", "context": {"a": 1e400}}', "context"),
    ("/v1/recommend", '{"user_id": "u", "context": {"a": null}}', "context"),
    ("/v1/events", event(timestamp="true"), "timestamp"),
    ("/v1/events", event(timestamp='"5"'), "timestamp"),
    ("/v1/events", event(timestamp="NaN"), "timestamp"),
    ("/v1/events", event(timestamp="1e308"), "timestamp"),
    ("/v1/events", event(timestamp="-1e308"), "timestamp"),
    ("/v1/events", event(timestamp=repr(time.time() + 3_600)), "timestamp"),
    ("/v1/events", event(timestamp="0"), "timestamp"),
    ("/v1/events", event(value="Infinity"), "value"),
    ("/v1/events", event(value='"3.5"'), "value"),
    ("/v1/events", event(propensity='"0.5"'), "propensity"),
    ("/v1/events", event(propensity="true"), "propensity"),
    ("/admin/reload", '{"artifact": 5}', "artifact"),
    ("/admin/reload", '{"artifact": true}', "artifact"),
    ("/admin/reload", '{"artifact": ["a"]}', "artifact"),
]

# bodies any endpoint must refuse with a 4xx: not decodable, nested too deep, numbers too long to parse
UNDECODABLE = [nested(1_000), nested(100_000), nested(200), "{" * 5_000, '{"k": ' + "9" * 5_000 + "}",
               "[" * 1_000, '"\\ud800"', "\x00", "{not json"]


@pytest.fixture
def hostile_client(client: TestClient) -> Iterator[TestClient]:
    """The service client, server exceptions answered as 500 (so that the test sees what a user would)."""
    with TestClient(client.app, raise_server_exceptions=False) as c:
        yield c


@pytest.mark.parametrize("content_type", [FAST, FASTAPI])
@pytest.mark.parametrize(("path", "raw", "field"), TYPED)
def test_wrong_types_are_422_naming_the_field(hostile_client: TestClient, content_type: str, path: str, raw: str,
                                              field: str) -> None:
    response = hostile_client.post(path, content=raw, headers={"content-type": content_type, **AUTH})
    assert response.status_code == 422, response.text
    assert field in response.json()["message"]


@pytest.mark.parametrize("content_type", [FAST, FASTAPI])
@pytest.mark.parametrize("raw", UNDECODABLE, ids=lambda raw: raw[:12])
@pytest.mark.parametrize("path", ENDPOINTS)
def test_undecodable_bodies_are_4xx_with_a_json_error(hostile_client: TestClient, content_type: str, path: str,
                                                      raw: str) -> None:
    response = hostile_client.post(path, content=raw, headers={"content-type": content_type, **AUTH})
    assert response.status_code in (400, 422), response.text
    assert response.headers["content-type"] == "application/json" and response.json()["detail"]


@pytest.mark.parametrize("content_type", [FAST, FASTAPI])
@pytest.mark.parametrize("path", ENDPOINTS)
def test_an_oversized_chunked_body_is_413(hostile_client: TestClient, content_type: str, path: str) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is found while streaming
        yield b'{"events": ['
        for _ in range(25):
            yield b" " * 50_000

    response = hostile_client.post(path, content=chunks(), headers={"content-type": content_type, **AUTH})
    assert response.status_code == 413, response.text
    assert "larger than" in response.json()["detail"]


def test_admin_token_is_checked_before_the_body(hostile_client: TestClient) -> None:
    for raw in ['{"bogus": 1}', "{not json", nested(1_000)]:
        response = hostile_client.post("/admin/reload", content=raw, headers={"content-type": FAST})
        assert response.status_code == 401, (raw, response.text)


def test_timestamps_inside_the_skew_window_are_stored(hostile_client: TestClient) -> None:
    now = time.time()
    body = {"events": [click("past", timestamp=now - 86_400 * 365), click("skewed", timestamp=now + 60)]}
    assert hostile_client.post("/v1/events", json=body).json()["new"] == 2


def test_the_real_server_answers_hostile_bodies_alike(tmp_path: Path) -> None:
    server = ServerProcess(write_fake_artifact(tmp_path / "v1"), f"sqlite:{tmp_path / 'state.db'}",
                           tmp_path / "server.log", env={"RANKSTACK_ADMIN_TOKEN": TOKEN})
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=10, headers=AUTH) as http:
            for content_type in (FAST, FASTAPI):
                for path in ENDPOINTS:
                    nested_body = http.post(path, content=nested(1_000), headers={"content-type": content_type})
                    assert nested_body.status_code in (400, 422) and nested_body.json()["detail"], nested_body.text

                    def chunks() -> Iterator[bytes]:
                        for _ in range(25):
                            yield b" " * 50_000

                    oversized = http.post(path, content=chunks(), headers={"content-type": content_type})
                    assert oversized.status_code == 413, oversized.text
                wrong = http.post("/v1/recommend", content='{"user_id": "u", "k": true}',
                                  headers={"content-type": content_type})
                assert wrong.status_code == 422 and "k" in wrong.json()["message"]
    finally:
        server.stop()
    assert "Traceback" not in (tmp_path / "server.log").read_text()
