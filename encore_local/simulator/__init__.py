"""The listening simulator: a seeded generative model of a music service (catalog, listeners, sessions)."""

from encore_local.simulator.params import SCALES, SimulationParams
from encore_local.simulator.run import SimulationSummary, simulate

__all__ = ["SCALES", "SimulationParams", "SimulationSummary", "simulate"]
