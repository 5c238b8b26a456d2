"""``python -m rankstack.serving``: options reach the server; configuration errors exit 2 with one line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from serving_fakes import write_fake_artifact

from rankstack.serving import __main__ as entry
from rankstack.serving import server
from rankstack.serving.settings import DEFAULT_BATCH_WAIT_MS


def test_workers_reach_the_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(entry, "run_server", lambda artifact, **kw: calls.append({"artifact": artifact, **kw}))
    assert entry.main([str(tmp_path), "--workers", "3", "--port", "9"]) == 0
    assert calls[0]["workers"] == 3 and calls[0]["port"] == 9 and calls[0]["artifact"] == tmp_path
    assert entry.main([str(tmp_path)]) == 0 and calls[1]["workers"] == 1
    assert calls[1]["pin_workers"] is False
    assert entry.main([str(tmp_path), "--workers", "2", "--pin-workers"]) == 0 and calls[2]["pin_workers"] is True
    assert calls[2]["balance_workers"] is True  # on unless turned off
    assert entry.main([str(tmp_path), "--workers", "2", "--no-balance-workers"]) == 0
    assert calls[3]["balance_workers"] is False


@pytest.mark.parametrize("workers", ["0", "-1"])
def test_fewer_than_one_worker_is_a_configuration_error(tmp_path: Path, workers: str,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    artifact = write_fake_artifact(tmp_path / "v1")
    code = entry.main([str(artifact), "--workers", workers, "--state", f"sqlite:{tmp_path / 's.db'}",
                       "--loader", "serving_fakes:load_fake"])
    assert code == 2
    assert "workers: Input should be greater than or equal to 1" in capsys.readouterr().err
    assert not (tmp_path / "s.db").exists()  # refused before anything was opened


def test_a_corrupt_artifact_stops_a_multi_worker_start(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "setswitchinterval", lambda _s: None)  # leave the test process's interval alone
    artifact = write_fake_artifact(tmp_path / "v1")
    (artifact / "manifest.json").write_text("{")
    code = entry.main([str(artifact), "--workers", "2", "--state", f"sqlite:{tmp_path / 's.db'}",
                       "--loader", "serving_fakes:load_fake"])
    assert code == 2 and f"artifact {artifact} refused" in capsys.readouterr().err


def test_batching_options_reach_the_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(entry, "run_server", lambda artifact, **kw: calls.append(kw))
    assert entry.main([str(tmp_path), "--max-batch", "8", "--batch-wait-ms", "2.5"]) == 0
    assert entry.main([str(tmp_path)]) == 0
    assert [(c["max_batch"], c["batch_wait_ms"]) for c in calls] == [(8, 2.5), (32, DEFAULT_BATCH_WAIT_MS)]


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--max-batch", "0", "max_batch: Input should be greater than or equal to 1"),
    ("--batch-wait-ms", "-1", "batch_wait_ms: Input should be greater than or equal to 0"),
    ("--batch-wait-ms", "500", "batch_wait_ms: Input should be less than or equal to 100"),
])
def test_bad_batching_options_are_configuration_errors(tmp_path: Path, option: str, value: str, message: str,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    artifact = write_fake_artifact(tmp_path / "v1")
    code = entry.main([str(artifact), option, value, "--state", f"sqlite:{tmp_path / 's.db'}",
                       "--loader", "serving_fakes:load_fake"])
    assert code == 2 and message in capsys.readouterr().err


def test_shedding_options_reach_the_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(entry, "run_server", lambda artifact, **kw: calls.append(kw))
    assert entry.main([str(tmp_path), "--no-shed", "--max-queue", "7", "--max-connections", "64"]) == 0
    assert entry.main([str(tmp_path)]) == 0
    assert [(c["shed"], c["max_queue"], c["max_connections"]) for c in calls] == [(False, 7, 64), (True, 1000, None)]


def test_a_bad_queue_bound_is_a_configuration_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = entry.main([str(write_fake_artifact(tmp_path / "v1")), "--max-queue", "0", "--state",
                       f"sqlite:{tmp_path / 's.db'}", "--loader", "serving_fakes:load_fake"])
    assert code == 2 and "max_queue: Input should be greater than or equal to 1" in capsys.readouterr().err


def test_connection_bounds_reach_uvicorn(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(sys, "setswitchinterval", lambda _s: None)
    monkeypatch.setattr(server.uvicorn, "run", lambda app, **kw: calls.append(kw))
    server.run_server(write_fake_artifact(tmp_path / "v1"), state=f"sqlite:{tmp_path / 's.db'}",
                      loader="serving_fakes:load_fake", max_connections=5, say=lambda _m: None)
    assert calls[0]["limit_concurrency"] == 5 and calls[0]["backlog"] == 2048


def test_the_request_start_header_and_event_deadline_reach_the_server(monkeypatch: pytest.MonkeyPatch,
                                                                     tmp_path: Path) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(entry, "run_server", lambda artifact, **kw: calls.append(kw))
    assert entry.main([str(tmp_path), "--request-start-header", "X-Request-Start", "--event-deadline-ms", "250"]) == 0
    assert entry.main([str(tmp_path)]) == 0
    assert [(c["request_start_header"], c["event_deadline_ms"]) for c in calls] == [("X-Request-Start", 250.0),
                                                                                   (None, 1000.0)]


def test_a_request_start_header_that_is_not_a_token_is_a_configuration_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = entry.main([str(write_fake_artifact(tmp_path / "v1")), "--request-start-header", "X Start", "--state",
                       f"sqlite:{tmp_path / 's.db'}", "--loader", "serving_fakes:load_fake"])
    assert code == 2 and "request_start_header: String should match pattern" in capsys.readouterr().err


def test_the_event_deadline_reaches_the_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    apps: list[Any] = []
    monkeypatch.setattr(sys, "setswitchinterval", lambda _s: None)
    monkeypatch.setattr(server.uvicorn, "run", lambda app, **kw: apps.append(app))
    monkeypatch.setattr(server, "create_app", lambda loader, store, settings: settings)
    server.run_server(write_fake_artifact(tmp_path / "v1"), state=f"sqlite:{tmp_path / 's.db'}",
                      loader="serving_fakes:load_fake", event_deadline_ms=250.0, say=lambda _m: None)
    assert apps[0].event_deadline_s == pytest.approx(0.25)
