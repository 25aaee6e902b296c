"""Impressions through the deployed path on the twin: the serving function (its code asset) writes one line per
answer to its output, the template's subscription filter on its log group sends the matching lines to the
impressions delivery stream as the filter's role, and Firehose writes them to ``raw/impressions/`` in the lake."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests

from encore.clients import get_client
from encore.promotion import attribution_totals_key
from encore_local.jobs import run_job
from encore_local.lake import read_table
from encore_local.twin.apigateway import DEFAULT_API_KEY

pytestmark = [pytest.mark.integration, pytest.mark.slow]
KEY = {"x-api-key": DEFAULT_API_KEY}


def impressions(config: Any) -> dict[str, dict[str, Any]]:
    """Every impression in the lake, by recommendation id."""
    s3, bucket = get_client("s3"), config.resources.lake_bucket
    found: dict[str, dict[str, Any]] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=config.lake.raw_impressions):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read().decode()
            for line in filter(None, body.split("\n")):
                record = json.loads(line)
                found[record["recommendation_id"]] = record
    return found


def test_each_answer_lands_in_the_lake_as_an_impression(served_api: str, served_lake: dict[str, Any]) -> None:
    config, services = served_lake["config"], served_lake["services"]
    refused_before = len(services.iam_refusals)
    events = pd.read_json(served_lake["sim"] / "events/2026-09-05.jsonl", lines=True, convert_dates=False)
    listener = str(events["user_id"].value_counts().index[0])
    home = requests.get(
        f"{served_api}/v1/users/{listener}/recommendations", params={"limit": 5}, headers=KEY, timeout=60
    )
    stranger = f"new-{uuid.uuid4().hex[:8]}"
    fallback = requests.get(f"{served_api}/v1/users/{stranger}/recommendations", headers=KEY, timeout=60)
    assert home.status_code == fallback.status_code == 200
    landed = impressions(config)
    mine = landed[home.json()["recommendation_id"]]
    assert mine == {
        "kind": "impression",
        "recommendation_id": home.json()["recommendation_id"],
        "surface": "home",
        "user_id": listener,
        "seed_track_id": None,
        "model_version": home.json()["model_version"],
        "variant": "champion",  # the endpoint's variant that answered (no test runs: the only one)
        "track_ids": [i["track_id"] for i in home.json()["items"]],
        "fallback": False,
        "fallback_reason": None,
        "cache_hit": mine["cache_hit"],
        "at_ms": mine["at_ms"],
    }
    theirs = landed[fallback.json()["recommendation_id"]]
    assert theirs["fallback"] is True and theirs["fallback_reason"] == "unknown_user" and theirs["user_id"] == stranger
    assert len(services.iam_refusals) == refused_before  # the filter's role may put to the stream


def test_attribute_plays_credits_the_plays_to_their_answers(served_api: str, served_lake: dict[str, Any],
                                                             tmp_path: Path) -> None:  # fmt: skip
    """Plays posted with an answer's id, then curate_events and attribute_plays from their assets: the day's
    table credits them (and counts the stray id), the table is in the catalog, the closed day's figures are in
    CloudWatch."""
    config = served_lake["config"]
    events = pd.read_json(served_lake["sim"] / "events/2026-09-05.jsonl", lines=True, convert_dates=False)
    listener = str(events["user_id"].value_counts().index[1])
    answer = requests.get(f"{served_api}/v1/users/{listener}/recommendations", params={"limit": 5}, headers=KEY,
                          timeout=60).json()  # fmt: skip
    now = int(time.time() * 1000)
    rid, items = answer["recommendation_id"], answer["items"]
    plays = [(items[0]["track_id"], "complete", 200_000, rid), (items[2]["track_id"], "skip", 5_000, rid),
             (items[1]["track_id"], "listen", 60_000, str(uuid.uuid4()))]  # the last: an id no answer had  # fmt: skip
    batch = [
        {"event_id": str(uuid.uuid4()), "user_id": listener, "track_id": track, "action": action,
         "timestamp": now + i, "played_ms": ms, "track_duration_ms": 200_000, "session_id": "s-attribution",
         "region": "US", "context": "home", "recommendation_id": sent_with}
        for i, (track, action, ms, sent_with) in enumerate(plays)
    ]  # fmt: skip
    posted = requests.post(f"{served_api}/v1/events", json={"events": batch}, headers=KEY, timeout=60)
    assert posted.status_code == 202, posted.text
    today = datetime.fromtimestamp(now / 1000, UTC)
    run_job("curate_events", config, run_time=today.isoformat(), lookback_days=1)
    # Two days on, today's window has closed: its rows are recomputed and its figures published.
    later = (today + timedelta(days=2)).replace(hour=0, minute=30)
    run = run_job("attribute_plays", config, run_time=later.isoformat())
    assert run.result["rows"] > 0 and run.result["datapoints"] > 0, run.result
    table = read_table(config, f"{config.lake.features}attribution/", tmp_path)
    day = table[table["day"] == today.date().isoformat()]
    home = day[(day["surface"] == "home") & (day["model_version"] == answer["model_version"])]
    assert len(home) == 1 and home["plays"].iloc[0] >= 2 and home["completes"].iloc[0] >= 1, home.to_dict("records")
    assert day["unknown"].sum() >= 1  # the stray id is accounted for
    assert home["impressions"].iloc[0] >= 1
    # the day's rows as JSON too, for the online test's judge
    totals = get_client("s3").get_object(
        Bucket=config.resources.lake_bucket, Key=attribution_totals_key(config, today.date())
    )
    rows = json.loads(totals["Body"].read())
    assert sum(r["plays"] for r in rows) == int(day["plays"].sum()) and {r["day"] for r in rows} == {str(today.date())}
    glue = get_client("glue")
    assert glue.get_table(DatabaseName=config.resources.glue_database, Name="attribution")["Table"]
    listed = get_client("cloudwatch").list_metrics(Namespace="Encore", MetricName="PlayThroughRate")["Metrics"]
    assert {"Name": "Surface", "Value": "home"} in [d for m in listed for d in m["Dimensions"]]
