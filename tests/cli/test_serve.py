"""``rankstack serve``: ``--workers`` is documented, passed on, and refused below 1."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from rankstack.cli import serve as serve_cli

runner = CliRunner()
app = typer.Typer()
app.command()(serve_cli.serve)


def test_help_documents_workers() -> None:
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "--workers" in result.output and "/metrics adds them up" in result.output


def test_workers_reach_the_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(serve_cli, "run_server", lambda artifact, **kw: calls.append(kw))
    assert runner.invoke(app, [str(tmp_path), "--workers", "2"]).exit_code == 0
    assert runner.invoke(app, [str(tmp_path)]).exit_code == 0
    assert [c["workers"] for c in calls] == [2, 1]


def test_zero_workers_is_refused(tmp_path: Path) -> None:
    result = runner.invoke(app, [str(tmp_path), "--workers", "0"])
    assert result.exit_code == 2 and "--workers" in result.output


def test_batching_options_reach_the_server_and_are_bounded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(serve_cli, "run_server", lambda artifact, **kw: calls.append(kw))
    assert runner.invoke(app, [str(tmp_path), "--max-batch", "4", "--batch-wait-ms", "1"]).exit_code == 0
    assert (calls[0]["max_batch"], calls[0]["batch_wait_ms"]) == (4, 1.0)
    assert runner.invoke(app, [str(tmp_path), "--max-batch", "0"]).exit_code == 2


def test_shedding_options_reach_the_server_and_are_bounded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(serve_cli, "run_server", lambda artifact, **kw: calls.append(kw))
    assert runner.invoke(app, [str(tmp_path), "--no-shed", "--max-queue", "50", "--max-connections", "300"]
                         ).exit_code == 0
    assert runner.invoke(app, [str(tmp_path)]).exit_code == 0
    assert [(c["shed"], c["max_queue"], c["max_connections"]) for c in calls] == [(False, 50, 300), (True, 1000, None)]
    for option in ("--max-queue", "--max-connections"):
        assert runner.invoke(app, [str(tmp_path), option, "0"]).exit_code == 2
