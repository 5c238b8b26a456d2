"""A seeded, vectorised ad/offer marketplace simulator with known click, conversion and revenue probabilities.

The names below are imported on first use (``rankstack.lazy_exports``), so importing one submodule does not
import the others."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rankstack.lazy_exports import lazy_getattr

if TYPE_CHECKING:
    from rankstack.simulation.log import SIM_SCHEMA, SimulationLog, load_simulation_config
    from rankstack.simulation.simulator import MarketplaceSimulator, SlatePolicy, SlateValue
    from rankstack.simulation.simulator_config import (
        DEVICES,
        PLACEMENTS,
        PolicyConfig,
        SimulatorConfig,
        load_simulator_config,
    )
    from rankstack.simulation.world import Marketplace, Requests

_HOME = {
    **dict.fromkeys(["DEVICES", "PLACEMENTS", "PolicyConfig", "SimulatorConfig", "load_simulator_config"],
                    "simulator_config"),
    **dict.fromkeys(["SIM_SCHEMA", "SimulationLog", "load_simulation_config"], "log"),
    **dict.fromkeys(["MarketplaceSimulator", "SlatePolicy", "SlateValue"], "simulator"),
    **dict.fromkeys(["Marketplace", "Requests"], "world"),
}

__all__ = [
    "DEVICES",
    "PLACEMENTS",
    "SIM_SCHEMA",
    "Marketplace",
    "MarketplaceSimulator",
    "PolicyConfig",
    "Requests",
    "SimulationLog",
    "SimulatorConfig",
    "SlatePolicy",
    "SlateValue",
    "load_simulation_config",
    "load_simulator_config",
]

__getattr__ = lazy_getattr(__name__, _HOME)
