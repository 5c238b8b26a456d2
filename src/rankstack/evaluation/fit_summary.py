"""What a fit did: epochs run, the best epoch, why training stopped and the validation curve, with a warning when
it stopped while validation was still improving. Every trained model reports one; imports no torch.

Convention for models without epochs (popularity, item-kNN, EASE: closed-form fits): ``epochs_run`` 0,
``best_epoch`` None, ``stopped_by`` ``"converged"`` and no curve.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, cast, get_args

StoppedBy = Literal["converged", "epochs", "budget"]
STOPPED_BY: tuple[str, ...] = get_args(StoppedBy)


@dataclass(frozen=True)
class FitSummary:
    """``epochs_run`` completed epochs (a budget may cut one more part-way); ``best_epoch`` the epoch whose weights
    were kept (None: closed-form, or no validation and no completed epoch); ``stopped_by``: ``converged`` (the
    validation metric stopped improving for ``patience`` validations, or a closed-form fit), ``epochs`` (the
    configured maximum ran) or ``budget`` (the wall-clock ``budget_s`` ran out). ``curve``: (epoch, value) of
    the validation ``metric`` at each validation, higher better unless ``higher_is_better`` is False."""

    epochs_run: int
    best_epoch: int | None
    stopped_by: StoppedBy
    epochs: int | None = None
    metric: str | None = None
    curve: tuple[tuple[int, float], ...] = ()
    higher_is_better: bool = True
    budget_s: float | None = None
    wall_s: float | None = None

    def __post_init__(self) -> None:
        if self.stopped_by not in STOPPED_BY:
            raise ValueError(f"stopped_by must be one of {', '.join(STOPPED_BY)}, got {self.stopped_by!r}")

    @classmethod
    def closed_form(cls) -> FitSummary:
        """The summary of a fit without epochs (see the module's convention)."""
        return cls(epochs_run=0, best_epoch=None, stopped_by="converged")

    @property
    def still_improving(self) -> bool:
        """Training stopped (by budget or epochs) right after a validation that beat every earlier one."""
        if self.stopped_by == "converged" or not self.curve:
            return False
        *earlier, last = (v if self.higher_is_better else -v for _, v in self.curve)
        return not earlier or last > max(earlier)

    def warning(self) -> str | None:
        """A sentence when the metrics may not be the model's: training stopped before validation plateaued."""
        budget = "its time budget" if self.budget_s is None else f"time_budget_s={self.budget_s:g}"
        if self.stopped_by == "budget" and not self.curve:
            return (f"stopped by {budget} after {self.epochs_run} epoch(s) without a validation "
                    "curve: nothing says it converged; results depend on machine speed")
        if not self.still_improving:
            return None
        last_epoch, last = self.curve[-1]
        why = (f"{budget} ran out" if self.stopped_by == "budget"
               else f"the last of {self.epochs} configured epochs ran")
        fix = "raise time_budget_s" if self.stopped_by == "budget" else "raise epochs"
        return (f"stopped after {self.epochs_run} epoch(s) because {why} while validation {self.metric} was still "
                f"improving ({last:.4f} at epoch {last_epoch}, its best): {fix} before trusting these metrics")

    def headline(self) -> dict[str, Any]:
        """The three fields every trained model's run record carries: ``epochs_run``, ``best_epoch``,
        ``stopped_by``."""
        return {"epochs_run": self.epochs_run, "best_epoch": self.best_epoch, "stopped_by": self.stopped_by}

    def curve_text(self, points: int = 8) -> str:
        """``epoch:value`` at up to ``points`` validations spread over the curve (first, best and last included)."""
        if not self.curve:
            return "-"
        n = len(self.curve)
        picked = {round(i * (n - 1) / max(points - 1, 1)) for i in range(min(points, n))}
        values = [v for _, v in self.curve]
        picked.add(values.index(max(values) if self.higher_is_better else min(values)))
        return " ".join(f"{self.curve[i][0]}:{self.curve[i][1]:.4f}" for i in sorted(picked))

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict, the warning included (None when there is none)."""
        return {"epochs_run": self.epochs_run, "best_epoch": self.best_epoch, "stopped_by": self.stopped_by,
                "epochs": self.epochs, "metric": self.metric, "higher_is_better": self.higher_is_better,
                "curve": [{"epoch": e, "value": v} for e, v in self.curve], "budget_s": self.budget_s,
                "wall_s": self.wall_s, "warning": self.warning()}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> FitSummary | None:
        """The summary written by :meth:`to_json` (None stays None)."""
        if not data:
            return None
        best = data.get("best_epoch")
        return cls(int(data["epochs_run"]), None if best is None else int(best),
                   cast(StoppedBy, data["stopped_by"]), data.get("epochs"), data.get("metric"),
                   tuple((int(p["epoch"]), float(p["value"])) for p in data.get("curve", [])),
                   bool(data.get("higher_is_better", True)), data.get("budget_s"), data.get("wall_s"))
