"""Recommendations computed ahead: the nightly run's batch_recommend step on the twin, after the champion was
deployed. Each active listener the champion knows gets a full list of unplayed tracks under the artist cap, as a
catalogued Parquet table; a named filter holds as it does online."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from encore.clients import get_client
from encore.config import runtime_values
from encore.models import CatalogFilter
from encore_local.jobs import run_job
from encore_local.lake import read_table

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def batch(served_lake: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    config = served_lake["config"]
    run = served_lake["run"]
    assert "batch_recommend" in [s["state"] for s in run.states if s["status"] == "succeeded"], run.failure()
    table = read_table(config, config.lake.batch, tmp_path_factory.mktemp("batch"))
    curated = read_table(config, config.lake.curated_events, tmp_path_factory.mktemp("curated"))
    return {
        "config": config,
        "table": table,
        "curated": curated,
        "catalog": served_lake["catalog"],
        "tmp": tmp_path_factory,
        "at": served_lake["at"],
    }


def test_each_active_listener_gets_a_full_list_of_unplayed_tracks(batch: dict[str, Any]) -> None:
    config, table, curated = batch["config"], batch["table"], batch["curated"]
    at = batch["at"]
    since = int((at - timedelta(days=config.batch.active_days)).timestamp() * 1000)
    active = set(curated.loc[curated["timestamp"] >= since, "user_id"])
    listeners = set(table["user_id"])
    assert listeners and listeners <= active and len(listeners) >= 0.9 * len(active)
    assert (table.groupby("user_id").size() == config.batch.size).all()
    assert (table.groupby("user_id")["rank"].apply(lambda r: sorted(r) == list(range(1, len(r) + 1)))).all()
    assert set(table["dt"]) == {at.date().isoformat()} and set(table["model_version"]) == {"encore-serving-test"}
    played = curated.groupby("user_id")["track_id"].apply(set)
    recent = curated[curated["timestamp"] >= since].groupby("user_id")["track_id"].apply(set)
    for user, rows in table.groupby("user_id"):
        assert not set(rows["track_id"]) & recent.get(user, set()), user
        assert len(set(rows["track_id"]) & played.get(user, set())) <= 2, user  # played before the window: rare
        artists = rows["track_id"].map(lambda t: batch["catalog"][t].artist_id).value_counts()
        assert artists.max() <= config.serving.max_per_artist, user
    assert {"personalised", "exploration"} >= set(table["reason"]) and "personalised" in set(table["reason"])


def test_the_table_is_in_the_catalog(batch: dict[str, Any]) -> None:
    config = batch["config"]
    glue = get_client("glue")
    table = glue.get_table(DatabaseName=config.resources.glue_database, Name="batch_recommendations")["Table"]
    assert table["StorageDescriptor"]["Location"].endswith(f"/{config.lake.batch}")
    assert [k["Name"] for k in table["PartitionKeys"]] == ["dt"]
    parts = glue.get_partitions(DatabaseName=config.resources.glue_database, TableName="batch_recommendations")
    assert [p["Values"] for p in parts["Partitions"]] == [[batch["at"].date().isoformat()]]


def test_a_named_filter_holds_in_every_list(batch: dict[str, Any]) -> None:
    config = batch["config"]
    clean = config.model_copy(update={"batch": config.batch.model_copy(update={"filter": "clean"})})
    done = run_job("batch_recommend", config, run_time=batch["at"].isoformat(),
                   extra={"encore_config": json.dumps(runtime_values(clean))})  # fmt: skip
    table = read_table(config, config.lake.batch, batch["tmp"].mktemp("clean"))
    assert done.result["rows"] == len(table) > 0 and set(table["filter"]) == {"clean"}
    rule = CatalogFilter(explicit=False)
    today = datetime.now(UTC).date()
    assert all(rule.allows(batch["catalog"][t], today) for t in table["track_id"])
    assert (table.groupby("user_id").size() == config.batch.size).all()


def test_the_job_runs_again_over_the_same_day(batch: dict[str, Any]) -> None:
    config = batch["config"]
    again = run_job("batch_recommend", config, run_time=batch["at"].isoformat())
    table = read_table(config, config.lake.batch, batch["tmp"].mktemp("again"))
    # the day's partition replaced, not appended to: one list per listener, as the nightly run wrote
    assert len(table) == again.result["rows"] == len(batch["table"])
    assert not table.duplicated(["user_id", "rank"]).any()
