"""A fake clock for the training deadlines (the ``slow_clock`` fixture of tests/conftest.py)."""

from __future__ import annotations

import pytest


class SlowClock:
    """The training loops' clock made deterministic: time stands still except where :meth:`charge` makes a
    function cost fixed seconds per call (a model made slow on purpose, so budgets are tested without timing)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = 0.0
        self._monkeypatch = monkeypatch

    def perf_counter(self) -> float:
        """The fake time, in seconds."""
        return self.now

    def charge(self, owner: object, name: str, seconds: float) -> None:
        """Make ``owner.name`` (a function or method) advance the clock by ``seconds`` each call."""
        original = getattr(owner, name)

        def slow(*args: object, **kwargs: object) -> object:
            self.now += seconds
            return original(*args, **kwargs)

        self._monkeypatch.setattr(owner, name, slow)
