"""Shared fixtures: configuration, the twin's services, and a small simulated service."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from encore.clients import get_client
from encore.config import EncoreConfig
from encore.models import TrackInfo
from encore.stores import plain_item
from encore_local.lake import import_simulation
from encore_local.pipeline import run_state_machine
from encore_local.simulator import SimulationParams, SimulationSummary, simulate
from encore_local.twin.services import TwinEndpoints, TwinServices


@pytest.fixture(scope="session")
def twin_services() -> Iterator[TwinServices]:
    """The twin for the whole session, with the local stage's synthesized stack deployed; the environment points
    boto3 at it."""
    services = TwinServices(EncoreConfig.for_stage("local"))
    services.start()
    try:
        yield services
    finally:
        services.stop()


@pytest.fixture(scope="session")
def config(twin_services: TwinServices) -> EncoreConfig:
    """The local stage as the twin deployed it (the lake bucket has the name the stack gave it)."""
    return twin_services.config


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
def served_lake(
    twin_services: TwinServices, twin: TwinEndpoints, small_sim: tuple[Path, SimulationSummary]
) -> dict[str, Any]:
    """The small simulation through the nightly state machine on the twin, in a stack of its own (the prod
    stage, synthesized and deployed beside local): the history imported the day before, then the execution's
    jobs (its curate takes the whole import), training, the gate, deploy to the twin's endpoint, vectors loaded."""
    config = twin_services.deploy("prod")
    import_simulation(config, small_sim[0], progress=False, arrived="2026-09-10")  # within the curate job's look-back
    at = datetime.fromisoformat(SERVED_RUN_TIME.replace("Z", "+00:00"))
    run = run_state_machine(config, config.resources.state_machine, name="serving-test", at=at)
    assert run.status == "SUCCEEDED" and run.promoted, run.failure() or run.gate
    last_day = pd.read_json(small_sim[0] / "events/2026-09-05.jsonl", lines=True, convert_dates=False)
    scan = get_client("dynamodb").get_paginator("scan").paginate(TableName=config.resources.tracks_table)
    items = (plain_item(item) for page in scan for item in page["Items"])
    return {
        "config": config,
        "run": run,
        "at": at,
        "sim": small_sim[0],
        "twin": twin,
        "services": twin_services,
        # the most active listener of the simulation's last day: the model knows them well
        "listener": str(last_day["user_id"].value_counts().index[0]),
        # the catalog as the tracks table serves it
        "catalog": {i["track_id"]: TrackInfo.model_validate(i) for i in items if not i["track_id"].startswith("vec#")},
    }


@pytest.fixture(scope="module")
def served_api(served_lake: dict[str, Any]) -> Iterator[str]:
    """The twin's API Gateway over the served lake's stage, over HTTP (its URL), for one test module."""
    server = served_lake["services"].api(served_lake["config"])
    url = server.start()
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def dev_stage(twin_services: TwinServices) -> EncoreConfig:
    """The dev stage, deployed beside local, with an empty lake and no tables in its Data Catalog database: the
    modules that use it (the jobs, the imports) each start from nothing, whatever ran before them."""
    config = twin_services.deploy("dev")
    s3 = get_client("s3")
    bucket = config.resources.lake_bucket
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys})
    glue, db = get_client("glue"), config.resources.glue_database
    for table in glue.get_tables(DatabaseName=db)["TableList"]:
        glue.delete_table(DatabaseName=db, Name=table["Name"])
    return config
