"""Shared fixtures: configuration, the twin's services, and a small simulated service."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from encore.config import EncoreConfig
from encore_local.simulator import SimulationParams, SimulationSummary, simulate
from encore_local.twin import TwinEndpoints, TwinServices


@pytest.fixture(scope="session")
def config() -> EncoreConfig:
    return EncoreConfig.for_stage("local")


@pytest.fixture(scope="session")
def twin(config: EncoreConfig) -> Iterator[TwinEndpoints]:
    """moto and redis on free loopback ports for the whole session; the environment points boto3 at them."""
    with TwinServices(config) as endpoints:
        yield endpoints


@pytest.fixture(scope="session")
def small_params() -> SimulationParams:
    return SimulationParams(users=300, tracks=800, days=10, seed=11)


@pytest.fixture(scope="session")
def small_sim(
    tmp_path_factory: pytest.TempPathFactory, small_params: SimulationParams
) -> tuple[Path, SimulationSummary]:
    out = tmp_path_factory.mktemp("sim")
    return out, simulate(small_params, out, progress=False)
