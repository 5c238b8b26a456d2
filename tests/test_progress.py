"""Progress output: periodic plain lines when the output is not a terminal (CI, nohup, log files)."""

from __future__ import annotations

import io

import pytest

from rankstack.progress import PLAIN_EVERY_S, QUIET_ENV, PlainProgress, new_progress


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_stream_that_is_not_a_terminal_gets_plain_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(QUIET_ENV, raising=False)
    progress = new_progress(stream=io.StringIO())
    assert isinstance(progress, PlainProgress)
    assert progress.every_s == PLAIN_EVERY_S


def test_lines_say_what_how_far_elapsed_and_eta_every_interval() -> None:
    out, clock = io.StringIO(), FakeClock()
    with PlainProgress(out, every_s=15, get_time=clock) as progress:
        task = progress.add_task("SASRec", total=5)
        for _ in range(5):
            clock.now += 10  # one 10 s epoch
            progress.advance(task)
    assert out.getvalue().splitlines() == [
        "SASRec: 2/5 (40%), elapsed 0:00:20, ETA 0:00:30",
        "SASRec: 4/5 (80%), elapsed 0:00:40, ETA 0:00:10",
        "SASRec: done, 5/5 (100%) in 0:00:50",
    ]


def test_update_with_a_new_description_and_early_stop_are_reported() -> None:
    out, clock = io.StringIO(), FakeClock()
    with PlainProgress(out, every_s=15, get_time=clock) as progress:
        task = progress.add_task("LightGCN", total=10)
        clock.now += 20
        progress.update(task, description="LightGCN val recall@20 0.1000")  # the count has not moved: no line
        progress.update(task, advance=1)
    assert out.getvalue().splitlines() == [
        "LightGCN val recall@20 0.1000: 1/10 (10%), elapsed 0:00:20, ETA 0:03:00",
        "LightGCN val recall@20 0.1000: stopped at 1/10 (10%) after 0:00:20",
    ]


def test_short_tasks_and_quiet_mode_print_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    out, clock = io.StringIO(), FakeClock()
    with PlainProgress(out, every_s=15, get_time=clock) as progress:
        task = progress.add_task("funnel recall", total=3)
        for _ in range(3):
            clock.now += 1
            progress.advance(task)
    assert out.getvalue() == ""
    monkeypatch.setenv(QUIET_ENV, "1")
    quiet = io.StringIO()
    with new_progress(stream=quiet) as progress:
        progress.advance(progress.add_task("x", total=1))
    assert quiet.getvalue() == ""


def test_default_stream_is_stderr_when_it_is_not_a_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(QUIET_ENV, raising=False)
    progress = new_progress()
    assert isinstance(progress, PlainProgress)
    progress.every_s = 0.0
    with progress:
        progress.advance(progress.add_task("evaluating", total=2))
    assert "evaluating: 1/2 (50%)" in capsys.readouterr().err


def test_training_advances_by_batch_shares_and_the_eta_follows_them() -> None:
    out, clock = io.StringIO(), FakeClock()
    with PlainProgress(out, every_s=15, get_time=clock) as progress:
        task = progress.add_task("LightGCN", total=4)
        for _ in range(10):  # an epoch of 4 batches of 4 s: the line is due part-way through the second epoch
            clock.now += 4
            progress.update(task, advance=0.25)
    assert out.getvalue().splitlines()[0] == "LightGCN: 1/4 (25%), elapsed 0:00:16, ETA 0:00:48"
    assert out.getvalue().splitlines()[1] == "LightGCN: 2/4 (50%), elapsed 0:00:32, ETA 0:00:32"
    assert out.getvalue().splitlines()[2] == "LightGCN: stopped at 2.5/4 (62%) after 0:00:40"


def test_the_terminal_bar_shows_an_eta(monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.progress import TimeRemainingColumn

    monkeypatch.delenv(QUIET_ENV, raising=False)
    terminal = type("Terminal", (io.StringIO,), {"isatty": lambda self: True})()
    bar = new_progress(stream=terminal)
    assert not isinstance(bar, PlainProgress)
    assert any(isinstance(column, TimeRemainingColumn) for column in bar.columns)
