"""Shared fixtures: configuration, the twin's services, and a small simulated service."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from encore.config import EncoreConfig
from encore_local.lake import import_simulation
from encore_local.pipeline import run_pipeline
from encore_local.simulator import SimulationParams, SimulationSummary, simulate
from encore_local.twin.services import TwinEndpoints, TwinServices
from encore_local.twin.provision import provision


@pytest.fixture(scope="session")
def config() -> EncoreConfig:
    return EncoreConfig.for_stage("local")


@pytest.fixture(scope="session")
def twin_services(config: EncoreConfig) -> Iterator[TwinServices]:
    """moto and redis on free loopback ports for the whole session; the environment points boto3 at them."""
    services = TwinServices(config)
    services.start()
    try:
        yield services
    finally:
        services.stop()


@pytest.fixture(scope="session")
def twin(twin_services: TwinServices) -> TwinEndpoints:
    assert twin_services.endpoints is not None
    return twin_services.endpoints


@pytest.fixture(scope="session")
def small_params() -> SimulationParams:
    return SimulationParams(users=300, tracks=800, days=10, seed=11)


@pytest.fixture(scope="session")
def small_sim(
    tmp_path_factory: pytest.TempPathFactory, small_params: SimulationParams
) -> tuple[Path, SimulationSummary]:
    out = tmp_path_factory.mktemp("sim")
    return out, simulate(small_params, out, progress=False)


SERVED_RUN_TIME = "2026-09-11T06:00:00Z"


@pytest.fixture(scope="session")
def served_lake(twin: TwinEndpoints, small_sim: tuple[Path, SimulationSummary]) -> dict[str, Any]:
    """The small simulation through the whole pipeline on the twin, in a lake of its own (stage prod): jobs,
    training, the gate, deploy to the twin's endpoint, vectors loaded."""
    config = EncoreConfig.for_stage("prod")
    provision(config)
    import_simulation(config, small_sim[0], progress=False)
    run = run_pipeline(config, run_time=SERVED_RUN_TIME, lookback_days=0, job_name="serving-test")
    assert run.promoted, run.state.get("gate")
    return {"config": config, "run": run, "sim": small_sim[0], "twin": twin}
