"""The Glue jobs on a local SparkSession against the twin, checked against an independent pandas computation."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from encore.clients import get_client
from encore.config import EncoreConfig
from encore.scoring import MS_PER_DAY, event_rating
from encore_local.jobs import JobRun, run_job
from encore_local.lake import import_simulation, raw_key, read_table
from encore_local.simulator import SimulationSummary

pytestmark = [pytest.mark.integration, pytest.mark.slow]
RUN_TIME = "2026-09-11T06:00:00Z"
RUN_MS = int(pd.Timestamp(RUN_TIME).timestamp() * 1000)
BAD_ROWS = [
    b"{not json at all\n",
    json.dumps(
        {
            "event_id": "not-a-uuid",
            "user_id": "u1",
            "track_id": "t1",
            "action": "listen",
            "timestamp": RUN_MS,
            "played_ms": 1,
            "track_duration_ms": 100000,
            "region": "US",
        }
    ).encode()
    + b"\n",
    json.dumps(
        {
            "event_id": "0b9f6a0e-3c1d-4c7e-9a55-2f5d1f0f6a99",
            "user_id": "u1",
            "track_id": "t1",
            "action": "pause",
            "timestamp": RUN_MS - 1000,
            "played_ms": 1,
            "track_duration_ms": 100000,
            "region": "US",
        }
    ).encode()
    + b"\n",
]


@pytest.fixture(scope="module")
def lake(
    dev_stage: EncoreConfig, small_sim: tuple[Path, SimulationSummary], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """A stack of its own (the dev stage, deployed beside local) with the small simulation, a duplicated day and
    some bad rows; every job run through the twin's Glue, from the jobs' script assets."""
    config = dev_stage
    sim_dir, _ = small_sim
    import_simulation(config, sim_dir, progress=False)
    s3 = get_client("s3")
    bucket = config.resources.lake_bucket
    # Firehose is at-least-once: the same day delivered again, and rows that must be quarantined.
    day = (sim_dir / "events/2026-09-03.jsonl").read_bytes()
    s3.put_object(Bucket=bucket, Key=raw_key(config, "2026-09-03", "redelivered.gz"), Body=gzip.compress(day))
    s3.put_object(Bucket=bucket, Key=raw_key(config, "2026-09-04", "bad"), Body=b"".join(BAD_ROWS))
    runs: dict[str, JobRun] = {}
    runs["load_catalog"] = run_job("load_catalog", config)
    runs["curate_events"] = run_job("curate_events", config, run_time=RUN_TIME, lookback_days=0)
    runs["curate_again"] = run_job("curate_events", config, run_time=RUN_TIME, lookback_days=0)
    runs["build_features"] = run_job("build_features", config, run_time=RUN_TIME)
    runs["build_charts"] = run_job("build_charts", config, run_time=RUN_TIME)
    tmp = tmp_path_factory.mktemp("lake")
    events = pd.concat(
        pd.read_json(p, lines=True, convert_dates=False) for p in sorted((sim_dir / "events").glob("*.jsonl"))
    )
    events = events[events["timestamp"] <= RUN_MS + 3600 * 1000]  # later ones are "in the future" at RUN_TIME
    return {"config": config, "runs": runs, "events": events, "tmp": tmp, "sim": sim_dir}


def test_every_event_is_curated_exactly_once(lake: dict[str, Any]) -> None:
    curated = read_table(lake["config"], "curated/events/", lake["tmp"] / "a")
    assert curated["event_id"].is_unique
    assert set(curated["event_id"]) == set(lake["events"]["event_id"])
    assert lake["runs"]["curate_again"].result["curated"] == lake["runs"]["curate_events"].result["curated"]
    by_day = curated.groupby("dt").size()
    expected = pd.to_datetime(lake["events"]["timestamp"], unit="ms").dt.strftime("%Y-%m-%d").value_counts()
    assert by_day.sort_index().to_dict() == expected.sort_index().to_dict()


def test_bad_rows_are_quarantined_with_their_reason(lake: dict[str, Any]) -> None:
    bad = read_table(lake["config"], "quarantine/events/", lake["tmp"] / "b")
    reasons = " | ".join(bad["reason"])
    assert "malformed JSON" in reasons and "event_id: not a UUID" in reasons and "action: not listen" in reasons
    assert set(bad["arrival_dt"].astype(str)) >= {"2026-09-04"}


def test_interactions_equal_pandas(lake: dict[str, Any]) -> None:
    config, ev = lake["config"], lake["events"].copy()
    ev = ev[(ev["timestamp"] <= RUN_MS) & (ev["timestamp"] >= RUN_MS - config.rating.window_days * MS_PER_DAY)]
    ev["c"] = event_rating(
        ev["action"].to_numpy(), ev["played_ms"].to_numpy(), RUN_MS - ev["timestamp"].to_numpy(), config.rating
    )
    expected = ev.groupby(["user_id", "track_id"])["c"].sum()
    got = read_table(config, "features/interactions/", lake["tmp"] / "c").set_index(["user_id", "track_id"])["rating"]
    assert len(got) == len(expected)
    assert np.allclose(got.loc[expected.index].to_numpy(), expected.to_numpy(), atol=1e-9)


def test_track_and_user_stats_equal_pandas(lake: dict[str, Any]) -> None:
    config, ev = lake["config"], lake["events"]
    ev = ev[ev["timestamp"] <= RUN_MS]
    play = (ev["action"] == "complete") | (ev["played_ms"] > config.session.qualifying_play_ms)
    recent = ev["timestamp"] > RUN_MS - 7 * MS_PER_DAY
    stats = read_table(config, "features/track_stats/", lake["tmp"] / "d").set_index("track_id")
    assert (
        stats["plays_total"].to_dict()
        == ev[play].groupby("track_id").size().reindex(stats.index, fill_value=0).to_dict()
    )
    assert (
        stats["plays_7d"].to_dict()
        == ev[play & recent].groupby("track_id").size().reindex(stats.index, fill_value=0).to_dict()
    )
    assert stats["listeners"].to_dict() == ev.groupby("track_id")["user_id"].nunique().to_dict()
    users = read_table(config, "features/user_stats/", lake["tmp"] / "e").set_index("user_id")
    assert users["events"].to_dict() == ev.groupby("user_id").size().to_dict()


def _expected_top(ev: pd.DataFrame, fmt: str, region: str, period: str, size: int, qualifying: int) -> list[str]:
    play = ev[(ev["action"] == "complete") | (ev["played_ms"] > qualifying)].copy()
    play["period"] = pd.to_datetime(play["timestamp"], unit="ms").dt.strftime(fmt)
    sel = play[(play["period"] == period) & ((play["region"] == region) | (region == "GLOBAL"))]
    counts = sel.groupby("track_id").size().reset_index(name="plays")
    return counts.sort_values(["plays", "track_id"], ascending=[False, True])["track_id"].head(size).tolist()


def test_charts_equal_pandas(lake: dict[str, Any]) -> None:
    config, ev = lake["config"], lake["events"]
    ev = ev[ev["timestamp"] <= RUN_MS]
    charts = read_table(config, "features/charts/", lake["tmp"] / "f")
    size, q = config.serving.chart_size, config.session.qualifying_play_ms
    for region, period in (("US", "2026-09-10"), ("GLOBAL", "2026-09-09"), ("BR", "2026-09-08")):
        got = (
            charts[
                (charts["kind"] == "top")
                & (charts["window"] == "day")
                & (charts["region"] == region)
                & (charts["period"] == period)
            ]
            .sort_values("rank")["track_id"]
            .tolist()
        )
        assert got == _expected_top(ev, "%Y-%m-%d", region, period, size, q), (region, period)
    hour = "2026-09-10T19"
    got = charts[(charts["window"] == "hour") & (charts["region"] == "GLOBAL") & (charts["period"] == hour)]
    assert got.sort_values("rank")["track_id"].tolist() == _expected_top(ev, "%Y-%m-%dT%H", "GLOBAL", hour, size, q)


def test_trending_equals_pandas(lake: dict[str, Any]) -> None:
    config, ev = lake["config"], lake["events"]
    q = config.session.qualifying_play_ms
    play = ev[
        ((ev["action"] == "complete") | (ev["played_ms"] > q))
        & (ev["timestamp"] <= RUN_MS)
        & (ev["timestamp"] > RUN_MS - 14 * MS_PER_DAY)
    ].copy()
    play["recent"] = play["timestamp"] > RUN_MS - 7 * MS_PER_DAY
    g = play.groupby("track_id")["recent"].agg(plays_7d="sum", total="count")
    g["prev"] = g["total"] - g["plays_7d"]
    g = g[g["plays_7d"] > 0]
    g["score"] = g["plays_7d"] * (g["plays_7d"] + 5) / (g["prev"] + 5)
    g = g.reset_index().sort_values(["score", "plays_7d", "track_id"], ascending=[False, False, True])
    charts = read_table(config, "features/charts/", lake["tmp"] / "g")
    got = charts[(charts["kind"] == "trending") & (charts["region"] == "GLOBAL")].sort_values("rank")
    assert got["track_id"].tolist() == g["track_id"].head(config.serving.chart_size).tolist()


def test_every_output_is_in_the_glue_catalog_with_partitions(lake: dict[str, Any]) -> None:
    config = lake["config"]
    glue = get_client("glue")
    db = config.resources.glue_database
    tables = {t["Name"] for t in glue.get_tables(DatabaseName=db)["TableList"]}
    assert tables >= {
        "curated_events",
        "quarantine_events",
        "interactions",
        "track_stats",
        "user_stats",
        "charts",
        "tracks",
    }
    parts = glue.get_partitions(DatabaseName=db, TableName="curated_events")["Partitions"]
    curated = read_table(config, "curated/events/", lake["tmp"] / "h")
    assert {p["Values"][0] for p in parts} == set(curated["dt"].astype(str))
    location = parts[0]["StorageDescriptor"]["Location"]
    assert location.startswith(f"s3://{config.resources.lake_bucket}/curated/events/dt=")
    columns = {
        c["Name"]: c["Type"]
        for c in glue.get_table(DatabaseName=db, Name="interactions")["Table"]["StorageDescriptor"]["Columns"]
    }
    assert columns["rating"] == "double" and columns["user_id"] == "string"


def test_tables_are_loaded(lake: dict[str, Any]) -> None:
    config = lake["config"]
    ddb = get_client("dynamodb")
    item = ddb.get_item(
        TableName=config.resources.charts_table, Key={"chart_key": {"S": "top#GLOBAL#day#latest"}, "rank": {"N": "1"}}
    )["Item"]
    assert item["period"]["S"] == "2026-09-11" and int(item["plays"]["N"]) > 0
    tracks = pd.read_csv(lake["sim"] / "catalog/tracks.csv", keep_default_na=False)
    row = tracks.iloc[0]
    got = ddb.get_item(TableName=config.resources.tracks_table, Key={"track_id": {"S": row["track_id"]}})["Item"]
    assert got["name"]["S"] == row["track_name"] and got["artist_name"]["S"] == row["artists"]
    assert float(got["audio"]["M"]["energy"]["N"]) == pytest.approx(row["energy"])
    assert lake["runs"]["load_catalog"].result["tracks"] == len(tracks)
