"""The candidate-source interface: fit on a dataset, score or retrieve top-k items for users."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal, Protocol

import numpy as np
import scipy.sparse as sp
import torch
from pydantic import BaseModel, ConfigDict, model_validator

from rankstack.candidates import Candidates
from rankstack.data.dataset import Dataset
from rankstack.evaluation.fit_summary import FitSummary
from rankstack.index.topk import topk_excluding


class SourceConfig(BaseModel):
    """Base of every component config: unknown keys are rejected.

    A config with a ``preset`` field fills, for a preset named in its ``presets``, every setting the caller did
    not give from that preset (settings given explicitly always win); the field defaults are the CPU preset.
    """

    model_config = ConfigDict(extra="forbid")
    presets: ClassVar[dict[str, dict[str, Any]]] = {}

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("preset") in cls.presets:
            return {**cls.presets[data["preset"]], **data}
        return data


@dataclass(frozen=True)
class BudgetStop:
    """A training run that its wall-clock ``time_budget_s`` ended before its configured ``epochs``.

    ``epochs_done`` epochs ran to the end; ``partial_epoch`` says what became of an epoch cut part-way:
    ``"discarded"`` (the weights are those of a completed epoch), ``"kept"`` (the budget ran out inside the
    first epoch, so its partial updates are all there is) or None (the budget was seen between epochs).
    """

    budget_s: float
    epochs_done: int
    epochs: int
    wall_s: float
    partial_epoch: Literal["discarded", "kept"] | None = None

    def message(self) -> str:
        """One line for logs and reports."""
        cut = {"discarded": "; the cut epoch's updates were discarded",
               "kept": "; inside the first epoch, whose partial updates were kept"}.get(self.partial_epoch or "", "")
        return (f"stopped by time_budget_s={self.budget_s:g} after {self.epochs_done} of {self.epochs} epochs "
                f"({self.wall_s:.1f} s){cut}: results depend on machine speed")

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (with the message)."""
        return {**asdict(self), "message": self.message()}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> BudgetStop | None:
        """The stop written by :meth:`to_json` (None stays None)."""
        if not data:
            return None
        return cls(float(data["budget_s"]), int(data["epochs_done"]), int(data["epochs"]), float(data["wall_s"]),
                   data.get("partial_epoch"))


class Retriever(Protocol):
    """What the pipeline's retrieval stage calls: a ``CandidateSource``, or one served from a vector index.

    A user's row must depend on nothing but the user's id and the trained model (never on the clock, the request
    or online state): the service keeps each known user's merged row between requests
    (``rankstack.pipeline.candidate_cache``)."""

    def retrieve(self, user_ids: np.ndarray, k: int) -> Candidates:
        """Top-``k`` candidates per user, the user's training items excluded."""
        ...


class CandidateSource(ABC):
    """A retrieval model. Subclasses implement :meth:`fit` and :meth:`score`; retrieval is shared.

    A source trained in epochs sets ``closed_form = False`` and its fit sets ``fit_summary_``; the others report
    :meth:`FitSummary.closed_form <rankstack.evaluation.fit_summary.FitSummary.closed_form>` once fitted.
    """

    name: ClassVar[str]
    config_class: ClassVar[type[SourceConfig]]
    closed_form: ClassVar[bool] = True
    budget_stop_: BudgetStop | None = None  # set by fit when a wall-clock budget ended training early
    fit_summary_: FitSummary | None = None  # set by the fit of a source trained in epochs

    def fit_summary(self) -> FitSummary | None:
        """What the fit did (epochs, best epoch, why it stopped, validation curve); None before fitting."""
        if self.fit_summary_ is not None:
            return self.fit_summary_
        if self.closed_form and getattr(self, "train_", None) is not None:
            return FitSummary.closed_form()
        return None

    def fit_note(self) -> str:
        """``"; 12 epochs (best 9), stopped by converged"`` for a model trained in epochs, then
        ``"; stopped by time_budget_s=…"`` when a wall-clock budget ended its training early (for a log line)."""
        summary = self.fit_summary()
        note = ""
        if summary is not None and not self.closed_form:
            best = "-" if summary.best_epoch is None else summary.best_epoch
            note = f"; {summary.epochs_run} epochs (best {best}), stopped by {summary.stopped_by}"
            if summary.warning():
                note += f" — warning: {summary.warning()}"
        return note + ("" if self.budget_stop_ is None else f"; {self.budget_stop_.message()}")

    def __init__(self, config: SourceConfig | None = None) -> None:
        self.config = config if config is not None else self.config_class()
        self.train_: sp.csr_matrix | None = None

    @abstractmethod
    def fit(self, dataset: Dataset) -> CandidateSource:
        """Learn from the (training) dataset; returns ``self``."""

    @abstractmethod
    def score(self, user_ids: np.ndarray) -> torch.Tensor:
        """Scores of every item for each user: float tensor [len(user_ids), n_items]; higher is better."""

    def _require_fitted(self) -> sp.csr_matrix:
        if self.train_ is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit(dataset) first")
        return self.train_

    def retrieve(self, user_ids: np.ndarray, k: int, *, exclude_seen: bool = True) -> Candidates:
        """Top-``k`` candidates per user, by default without the items each user saw in training."""
        train = self._require_fitted()
        user_ids = np.asarray(user_ids, dtype=np.int64)
        with torch.no_grad():
            values, indices = topk_excluding(
                self.score(user_ids), k, train if exclude_seen else None, user_ids
            )
        return Candidates(indices.cpu().numpy(), values.cpu().numpy(), source=self.name)
