"""Early stopping for the training loops of the learned sources: validation by full ranking with the
:class:`~rankstack.evaluation.evaluator.Evaluator`, patience, the best epoch's weights, the validation curve and one
wall-clock :class:`Deadline` for the whole fit.

Training side only (the ``_train`` suffix): the models' inference modules never import it, so loading a model
never loads the evaluator.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Callable, Iterator, Sequence
from types import SimpleNamespace
from typing import Any, Generic, TypeVar

import numpy as np
import scipy.sparse as sp
import torch

from rankstack.evaluation.evaluator import Evaluator
from rankstack.evaluation.fit_summary import FitSummary, StoppedBy

State = TypeVar("State")
EpochReporter = Callable[[int, float, "str | None"], None]
_REPORTERS: contextvars.ContextVar[tuple[EpochReporter, ...]] = contextvars.ContextVar("epoch_reporters", default=())


@contextlib.contextmanager
def report_epochs(reporter: EpochReporter) -> Iterator[None]:
    """While active, every validated epoch of any fit calls ``reporter(epoch, score, metric)`` (e.g. a tuner's
    report, so a scheduler can stop a poor trial early); training itself is unchanged."""
    token = _REPORTERS.set((*_REPORTERS.get(), reporter))
    try:
        yield
    finally:
        _REPORTERS.reset(token)


class Validation:
    """Metrics ``val_<name>@k`` of the ``held`` items ranked among every item but the ``seen`` ones, in the order
    of ``names``; the first name is the score early stopping maximises (``key``)."""

    def __init__(self, seen: sp.csr_matrix, held: sp.csr_matrix, k: int, device: torch.device,
                 names: Sequence[str] = ("recall", "ndcg")) -> None:
        self.evaluator = Evaluator(seen, held, ks=[k], device=device)
        self.k, self.names = k, tuple(names)
        self.key = f"val_{self.names[0]}@{k}"

    def _named(self, metrics: dict[str, float]) -> dict[str, float]:
        return {f"val_{name}@{self.k}": metrics[f"{name}@{self.k}"] for name in self.names}

    def of_embeddings(self, users: torch.Tensor, items: torch.Tensor) -> dict[str, float]:
        """Metrics of the inner-product scores ``users @ items.T``."""
        return self._named(self.evaluator.evaluate_embeddings(users, items))

    def of_scores(self, score: Callable[[np.ndarray], torch.Tensor]) -> dict[str, float]:
        """Metrics of ``score(user_ids)``: scores of every item [len(user_ids), n_items]."""
        return self._named(self.evaluator.evaluate(SimpleNamespace(score=score)))


class Deadline:
    """One wall-clock budget for a whole fit (set-up, every epoch and every validation pass), counted from when it
    is made; without a budget it never expires and never reads the clock again. Training loops ask
    :meth:`expired` between batches, so a budget holds inside an epoch too."""

    def __init__(self, budget_s: float | None) -> None:
        self.budget_s = budget_s
        self.t0 = time.perf_counter()

    def elapsed(self) -> float:
        """Seconds since the fit started."""
        return time.perf_counter() - self.t0

    def expired(self, reserve_s: float = 0.0, elapsed_s: float | None = None) -> bool:
        """Whether the budget is spent, or would be after ``reserve_s`` more seconds (never without a budget);
        ``elapsed_s``: a reading of :meth:`elapsed` just taken (else the clock is read)."""
        if self.budget_s is None:
            return False
        return (self.elapsed() if elapsed_s is None else elapsed_s) + reserve_s >= self.budget_s


class EarlyStopping(Generic[State]):
    """Patience on a validation score to maximise, the snapshot of its best epoch, the validation curve and the
    fit's :class:`Deadline` (``budget_s`` counted from construction unless a ``deadline`` started earlier).

    Inside an epoch, :meth:`time_to_stop` keeps back the time of the last validation pass, so the validation
    that follows the last epoch still ends within the budget; the first pass's time is unknown, so a budget that
    ends before any validation ran may be overrun by that one pass."""

    def __init__(self, epochs: int, patience: int, eval_every: int, budget_s: float | None = None, *,
                 deadline: Deadline | None = None, metric: str | None = None) -> None:
        self.epochs, self.patience, self.eval_every = epochs, patience, eval_every
        self.deadline = deadline if deadline is not None else Deadline(budget_s)
        self.budget_s = self.deadline.budget_s
        self.best, self.best_epoch, self.stale = -1.0, 0, 0
        self.best_state: State | None = None
        self.metric = metric
        self.curve: list[tuple[int, float]] = []
        self.validation_s = 0.0  # how long the last validation pass took
        self.t0 = self.deadline.t0

    def elapsed(self) -> float:
        """Seconds since training started."""
        return self.deadline.elapsed()

    def out_of_time(self, wall_s: float) -> bool:
        """Whether ``wall_s`` seconds reach the budget (never without one)."""
        return self.budget_s is not None and wall_s >= self.budget_s

    def over_budget(self) -> bool:
        """Whether the budget has run out now (reads the clock only when there is a budget)."""
        return self.deadline.expired()

    def time_to_stop(self, elapsed_s: float | None = None) -> bool:
        """Whether to stop now: the budget, less the time of one validation pass, is spent (``elapsed_s``: a
        reading of :meth:`elapsed` just taken)."""
        return self.deadline.expired(self.validation_s, elapsed_s)

    def due(self, epoch: int, out_of_time: bool = False) -> bool:
        """Whether ``epoch`` is validated: every ``eval_every`` epochs, the last one, and the one the budget ends."""
        return epoch % self.eval_every == 0 or epoch == self.epochs or out_of_time

    def validate(self, run: Callable[[], dict[str, float]]) -> dict[str, float]:
        """``run()`` (a validation pass), timed for :meth:`time_to_stop`."""
        start = time.perf_counter()
        metrics = run()
        self.validation_s = time.perf_counter() - start
        return metrics

    def record(self, epoch: int, score: float, snapshot: Callable[[], State]) -> None:
        """Keep ``snapshot()`` when ``score`` beats the best so far; otherwise one more epoch without gain (and tell
        the :func:`report_epochs` reporters)."""
        self.curve.append((epoch, float(score)))
        for reporter in _REPORTERS.get():
            reporter(epoch, float(score), self.metric)
        if score > self.best:
            self.best, self.stale, self.best_epoch = score, 0, epoch
            self.best_state = snapshot()
        else:
            self.stale += 1

    def state(self) -> dict[str, Any]:
        """What a resumed run needs: the best score, epoch and snapshot, the stale count, the curve, the time of the
        last validation pass and the seconds spent so far."""
        return {"best": self.best, "best_epoch": self.best_epoch, "stale": self.stale, "best_state": self.best_state,
                "curve": [list(p) for p in self.curve], "validation_s": self.validation_s, "elapsed": self.elapsed()}

    def load_state(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state`; the deadline counts the seconds already spent."""
        self.best, self.best_epoch, self.stale = float(state["best"]), int(state["best_epoch"]), int(state["stale"])
        self.best_state = state["best_state"]
        self.curve = [(int(e), float(v)) for e, v in state["curve"]]
        self.validation_s = float(state["validation_s"])
        self.deadline.t0 = self.t0 = time.perf_counter() - float(state["elapsed"])

    @property
    def patience_spent(self) -> bool:
        """``patience`` validations in a row without gain."""
        return self.stale >= self.patience

    def summary(self, epochs_run: int, stopped_by: StoppedBy, best_epoch: int | None) -> FitSummary:
        """The :class:`FitSummary` of the run so far."""
        return FitSummary(epochs_run, best_epoch, stopped_by, self.epochs, self.metric, tuple(self.curve),
                          budget_s=self.budget_s, wall_s=round(self.elapsed(), 3))
