"""A conformance check for training loops that run through :mod:`rankstack.data_parallel`: a run restarted from
any epoch's checkpoint ends exactly where the uninterrupted run ends (weights, epochs, validation curve)."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import torch

from rankstack import data_parallel
from rankstack.data_parallel import DataParallel, ResumeState


def _round_trip(state: ResumeState) -> ResumeState:
    """``state`` through ``torch.save`` and a weights-only ``torch.load``, as a Ray Train checkpoint travels."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    loaded: ResumeState = torch.load(buffer, weights_only=True)
    return loaded


class Recorder(DataParallel):
    """One process that keeps every epoch's checkpoint and, given ``resume``, starts from it."""

    checkpoints = True

    def __init__(self, resume: ResumeState | None = None) -> None:
        self.states: list[ResumeState] = []
        self.resume = resume

    def checkpoint(self, epoch: int, metrics: dict[str, float], state: ResumeState) -> None:
        """Keep a copy of the state as it would be read back."""
        self.states.append(_round_trip(state))

    def restore(self) -> ResumeState | None:
        """The state given to start from."""
        return self.resume


def check_resume(fit: Callable[[], Any], weights: Callable[[Any], dict[str, torch.Tensor]], epoch: int
                 ) -> tuple[Any, Any]:
    """Fit once with checkpoints, then again from the checkpoint of ``epoch``; assert both end with the same
    weights and the same epochs run. Returns (uninterrupted model, resumed model)."""
    first = Recorder()
    with data_parallel.use(first):
        whole = fit()
    assert len(first.states) >= epoch, f"only {len(first.states)} epochs were checkpointed, not {epoch}"
    assert [int(s["epoch"]) for s in first.states] == list(range(1, len(first.states) + 1))
    with data_parallel.use(Recorder(first.states[epoch - 1])):
        resumed = fit()
    a, b = weights(whole), weights(resumed)
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), f"{name} differs after resuming from epoch {epoch}"
    sa, sb = whole.fit_summary_, resumed.fit_summary_
    assert (sa.epochs_run, sa.best_epoch, sa.stopped_by) == (sb.epochs_run, sb.best_epoch, sb.stopped_by)
    assert [round(v, 12) for _, v in sa.curve] == [round(v, 12) for _, v in sb.curve]
    return whole, resumed
