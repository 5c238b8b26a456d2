"""The value model: calibrated predictions blended into one expected value per candidate, and weight sweeps."""

from rankstack.value.objective import ValueObjective, ValueTerm
from rankstack.value.pareto import SweepPoint, pareto_mask, plot_pareto, sweep_weights

__all__ = ["SweepPoint", "ValueObjective", "ValueTerm", "pareto_mask", "plot_pareto", "sweep_weights"]
