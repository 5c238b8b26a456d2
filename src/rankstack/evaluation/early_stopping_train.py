"""Early stopping for the training loops of the learned sources: validation by full ranking with the
:class:`~rankstack.evaluation.evaluator.Evaluator`, patience, the best epoch's weights and a wall-clock budget.

Training side only (the ``_train`` suffix): the models' inference modules never import it, so loading a model
never loads the evaluator.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Generic, TypeVar

import numpy as np
import scipy.sparse as sp
import torch

from rankstack.evaluation.evaluator import Evaluator

State = TypeVar("State")


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


class EarlyStopping(Generic[State]):
    """Patience on a validation score to maximise, the snapshot of its best epoch, and a wall-clock budget
    (``budget_s``, counted from construction)."""

    def __init__(self, epochs: int, patience: int, eval_every: int, budget_s: float | None = None) -> None:
        self.epochs, self.patience, self.eval_every, self.budget_s = epochs, patience, eval_every, budget_s
        self.best, self.best_epoch, self.stale = -1.0, 0, 0
        self.best_state: State | None = None
        self.t0 = time.perf_counter()

    def elapsed(self) -> float:
        """Seconds since training started."""
        return time.perf_counter() - self.t0

    def out_of_time(self, wall_s: float) -> bool:
        """Whether ``wall_s`` seconds reach the budget (never without one)."""
        return self.budget_s is not None and wall_s >= self.budget_s

    def over_budget(self) -> bool:
        """Whether the budget has run out now (reads the clock only when there is a budget)."""
        return self.budget_s is not None and self.elapsed() >= self.budget_s

    def due(self, epoch: int, out_of_time: bool = False) -> bool:
        """Whether ``epoch`` is validated: every ``eval_every`` epochs, the last one, and the one the budget ends."""
        return epoch % self.eval_every == 0 or epoch == self.epochs or out_of_time

    def record(self, epoch: int, score: float, snapshot: Callable[[], State]) -> None:
        """Keep ``snapshot()`` when ``score`` beats the best so far; otherwise one more epoch without gain."""
        if score > self.best:
            self.best, self.stale, self.best_epoch = score, 0, epoch
            self.best_state = snapshot()
        else:
            self.stale += 1

    @property
    def patience_spent(self) -> bool:
        """``patience`` validations in a row without gain."""
        return self.stale >= self.patience
