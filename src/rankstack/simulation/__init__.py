"""A seeded, vectorised ad/offer marketplace simulator with known click, conversion and revenue probabilities."""

from rankstack.simulation.config import DEVICES, PLACEMENTS, PolicyConfig, SimulatorConfig, load_simulator_config
from rankstack.simulation.log import SIM_SCHEMA, SimulationLog, load_simulation_config
from rankstack.simulation.simulator import MarketplaceSimulator, SlatePolicy, SlateValue
from rankstack.simulation.world import Marketplace, Requests

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
