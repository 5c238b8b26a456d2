"""A front proxy's request-start stamp: parsed in every unit proxies write, and, when the service is told the
header, counted into the request's deadline (a request that already spent it upstream is refused unrun)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from serving_fakes import load_fake, write_fake_artifact

from rankstack.serving import ServiceSettings, create_app
from rankstack.serving.request_start import MAX_WAIT_S, stamp_seconds, upstream_wait_s
from rankstack.state import SQLiteStateStore

NOW = 1_764_720_000.25  # 2025-12-03, seconds since the epoch
HEADER = "X-Request-Start"
FAST = {"content-type": "application/json"}


@pytest.mark.parametrize(("stamp", "seconds"), [
    ("t=1764720000.25", NOW),          # nginx t=${msec}: seconds with milliseconds
    ("1764720000.25", NOW),            # no prefix
    (" T=1764720000250 ", NOW),        # milliseconds, upper-case prefix, spaces
    ("t=1764720000250000", NOW),       # microseconds (Apache %t, HAProxy)
    ("1764720000250000000", NOW),      # nanoseconds
    (b"t=1764720000.25", NOW),         # raw header bytes
])
def test_a_stamp_is_read_in_any_unit(stamp: str | bytes, seconds: float) -> None:
    assert stamp_seconds(stamp) == pytest.approx(seconds, abs=1e-6)


@pytest.mark.parametrize("stamp", ["", "t=", "abc", "t=12:00", "nan", "inf", "-1764720000", "0", "t=1e400"])
def test_a_stamp_that_is_not_a_positive_time_is_none(stamp: str) -> None:
    assert stamp_seconds(stamp) is None
    assert upstream_wait_s(stamp, NOW) is None


@given(wait=st.floats(min_value=-30.0, max_value=MAX_WAIT_S - 1.0), unit=st.sampled_from([1.0, 1e3, 1e6]))
def test_the_wait_is_now_minus_the_stamp_and_never_negative(wait: float, unit: float) -> None:
    got = upstream_wait_s(f"t={(NOW - wait) * unit:.6f}", NOW)
    assert got is not None and got >= 0.0
    assert got == pytest.approx(max(wait, 0.0), abs=1e-3)


def test_a_stamp_older_than_the_clock_error_bound_is_ignored() -> None:
    assert upstream_wait_s(f"t={NOW - MAX_WAIT_S - 1:.3f}", NOW) is None
    assert upstream_wait_s(f"t={NOW - MAX_WAIT_S + 1:.3f}", NOW) == pytest.approx(MAX_WAIT_S - 1, abs=1e-3)


def _client(tmp_path: Path, header: str | None) -> Iterator[TestClient]:
    store = SQLiteStateStore(tmp_path / "state.db")
    settings = ServiceSettings(artifact=write_fake_artifact(tmp_path / "v1"), state_retry_s=0, deadline_s=0.1,
                               request_start_header=header)
    try:
        with TestClient(create_app(load_fake, store, settings)) as c:
            yield c
    finally:
        store.close()


@pytest.fixture
def stamped(tmp_path: Path) -> Iterator[TestClient]:
    """The service told that a proxy stamps ``X-Request-Start``; 100 ms deadline."""
    yield from _client(tmp_path, HEADER)


def _post(client: TestClient, age_s: float | None, stamp: str | None = None, header: str = HEADER,
          routed: bool = False) -> tuple[int, dict]:
    headers = {"content-type": "application/json; charset=utf-8"} if routed else dict(FAST)
    if stamp is None and age_s is not None:
        stamp = f"t={time.time() - age_s:.6f}"
    if stamp is not None:
        headers[header] = stamp
    r = client.post("/v1/recommend", json={"user_id": "u1", "k": 3}, headers=headers)
    return r.status_code, r.json()


def _metric(client: TestClient, name: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


@pytest.mark.parametrize("routed", [False, True], ids=["fast path", "FastAPI route"])
def test_a_request_that_spent_its_deadline_upstream_is_refused_unrun(stamped: TestClient, routed: bool) -> None:
    status, body = _post(stamped, age_s=0.5, routed=routed)
    assert status == 503 and body["reason"] == "expired"
    assert _metric(stamped, "rankstack_upstream_wait_seconds_count") == 1
    assert _metric(stamped, "rankstack_upstream_wait_seconds_sum") >= 0.5


def test_a_fresh_stamp_is_answered_and_its_wait_recorded(stamped: TestClient) -> None:
    status, body = _post(stamped, age_s=0.0)
    assert status == 200 and len(body["items"]) == 3
    status, _ = _post(stamped, age_s=None)  # no stamp: counted from when the service read it
    assert status == 200
    assert _metric(stamped, "rankstack_upstream_wait_seconds_count") == 1


@pytest.mark.parametrize("stamp", ["garbage", f"t={time.time() - 2 * MAX_WAIT_S:.3f}"], ids=["garbage", "wrong clock"])
def test_a_bad_stamp_is_counted_and_ignored(stamped: TestClient, stamp: str) -> None:
    status, _ = _post(stamped, age_s=None, stamp=stamp)
    assert status == 200
    assert _metric(stamped, "rankstack_request_start_invalid_total") == 1


def test_a_stamp_from_the_future_is_no_wait(stamped: TestClient) -> None:
    status, _ = _post(stamped, age_s=-30.0)
    assert status == 200


def test_without_the_setting_stamps_are_ignored(tmp_path: Path) -> None:
    for client in _client(tmp_path, None):
        status, _ = _post(client, age_s=0.5)
        assert status == 200
        assert _metric(client, "rankstack_upstream_wait_seconds_count") == 0


def test_another_header_name_is_honoured_case_insensitively(tmp_path: Path) -> None:
    for client in _client(tmp_path, "x-queue-start"):
        assert _post(client, age_s=0.5, header="X-Queue-Start")[0] == 503
        assert _post(client, age_s=0.5)[0] == 200  # X-Request-Start is not the header it was told


@pytest.mark.parametrize("name", ["", "X Request Start", "X-Request-Start:", "é"])
def test_a_header_name_that_is_not_a_token_is_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="request_start_header"):
        ServiceSettings(artifact=tmp_path, request_start_header=name)
