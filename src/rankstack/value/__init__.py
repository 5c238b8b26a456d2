"""The value model: calibrated predictions blended into one expected value per candidate, and weight sweeps.

The names below are imported on first use (``rankstack.lazy_exports``), so importing one submodule does not
import the others."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rankstack.lazy_exports import lazy_getattr

if TYPE_CHECKING:
    from rankstack.value.objective import ValueObjective, ValueTerm
    from rankstack.value.pareto import SweepPoint, pareto_mask, plot_pareto, sweep_weights

_HOME = {
    **dict.fromkeys(["ValueObjective", "ValueTerm"], "objective"),
    **dict.fromkeys(["SweepPoint", "pareto_mask", "plot_pareto", "sweep_weights"], "pareto"),
}

__all__ = ["SweepPoint", "ValueObjective", "ValueTerm", "pareto_mask", "plot_pareto", "sweep_weights"]

__getattr__ = lazy_getattr(__name__, _HOME)
