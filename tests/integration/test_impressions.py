"""Impressions through the deployed path on the twin: the serving function (its code asset) writes one line per
answer to its output, the template's subscription filter on its log group sends the matching lines to the
impressions delivery stream as the filter's role, and Firehose writes them to ``raw/impressions/`` in the lake."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
import requests

from encore.clients import get_client
from encore_local.twin.apigateway import DEFAULT_API_KEY

pytestmark = [pytest.mark.integration, pytest.mark.slow]
KEY = {"x-api-key": DEFAULT_API_KEY}


@pytest.fixture(scope="module")
def api(served_lake: dict[str, Any]) -> Iterator[str]:
    server = served_lake["services"].api(served_lake["config"])
    url = server.start()
    try:
        yield url
    finally:
        server.stop()


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


def test_each_answer_lands_in_the_lake_as_an_impression(api: str, served_lake: dict[str, Any]) -> None:
    config, services = served_lake["config"], served_lake["services"]
    refused_before = len(services.iam_refusals)
    events = pd.read_json(served_lake["sim"] / "events/2026-09-05.jsonl", lines=True, convert_dates=False)
    listener = str(events["user_id"].value_counts().index[0])
    home = requests.get(f"{api}/v1/users/{listener}/recommendations", params={"limit": 5}, headers=KEY, timeout=60)
    stranger = f"new-{uuid.uuid4().hex[:8]}"
    fallback = requests.get(f"{api}/v1/users/{stranger}/recommendations", headers=KEY, timeout=60)
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
        "variant": None,
        "track_ids": [i["track_id"] for i in home.json()["items"]],
        "fallback": False,
        "fallback_reason": None,
        "cache_hit": mine["cache_hit"],
        "at_ms": mine["at_ms"],
    }
    theirs = landed[fallback.json()["recommendation_id"]]
    assert theirs["fallback"] is True and theirs["fallback_reason"] == "unknown_user" and theirs["user_id"] == stranger
    assert len(services.iam_refusals) == refused_before  # the filter's role may put to the stream
