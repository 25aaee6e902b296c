"""Faults injected into the twin while requests go through its HTTP API: the cache stopped, the model endpoint
stopped, Firehose failing a share of records, DynamoDB throttled. Reads degrade as designed (a flagged answer,
never a 5xx other than a 503 that asks for a retry), and no event acknowledged with 202 is lost."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from support import KEY, history, new_events, raw_event_ids

from encore_local.twin.faults import set_faults
from encore_local.twin.services import TwinServices

pytestmark = [pytest.mark.reliability, pytest.mark.slow]


@pytest.fixture(scope="module")
def live(http_api: dict[str, Any]) -> dict[str, Any]:
    events = history(http_api["sim"])
    users = events["user_id"].value_counts().index[:20].tolist()
    tracks = events["track_id"].value_counts().index[:50].tolist()
    return {**http_api, "users": users, "tracks": tracks, "acked": [], "session": requests.Session()}


def post(live: dict[str, Any], n: int, seed: int) -> requests.Response:
    batch = new_events(live["users"], live["tracks"], n, seed)
    resp = live["session"].post(f"{live['url']}/v1/events", json={"events": batch}, headers=KEY, timeout=30)
    if resp.status_code == 202:
        live["acked"].extend(e["event_id"] for e in batch)
    return resp


def home(live: dict[str, Any], user: str) -> requests.Response:
    return live["session"].get(f"{live['url']}/v1/users/{user}/recommendations", headers=KEY, timeout=30)


@pytest.fixture
def faults(live: dict[str, Any]) -> Iterator[Any]:
    def inject(shares: dict[str, float]) -> dict[str, Any]:
        return set_faults(live["twin"].aws_endpoint, shares)

    try:
        yield inject
    finally:
        inject({})


def test_cache_stopped_reads_take_the_uncached_path_and_events_are_kept(
    live: dict[str, Any], twin_services: TwinServices
) -> None:
    user = live["users"][0]
    with twin_services.outage("cache"):
        resp = home(live, user)
        assert resp.status_code == 200 and resp.json()["items"]
        resp = post(live, 5, seed=1)
        assert resp.status_code == 202 and "cache_unavailable" in resp.json()["degraded"]
    resp = home(live, user)  # the node is back (empty): answers are cached again
    assert resp.status_code == 200 and not resp.json()["fallback"]


def test_endpoint_stopped_home_falls_back_to_trending_flagged(
    live: dict[str, Any], twin_services: TwinServices
) -> None:
    user = live["users"][1]
    assert post(live, 3, seed=2).status_code == 202  # a new generation: the next answer is not from the cache
    with twin_services.outage("endpoint"):
        body = home(live, user).json()
        assert body["fallback"] is True and body["fallback_reason"].startswith("endpoint")
        assert body["items"] and all(i["source"] != "model" for i in body["items"])
        assert post(live, 3, seed=3).status_code == 202
    assert post(live, 3, seed=4).status_code == 202
    body = home(live, user).json()
    assert body["fallback"] is False and body["items"][0]["source"] == "model"


def test_firehose_failing_a_share_of_records_loses_no_acknowledged_event(live: dict[str, Any], faults: Any) -> None:
    faults({"Firehose": 0.3})
    statuses = [post(live, 20, seed=10 + i).status_code for i in range(15)]
    injected = faults({"Firehose": 0.3})["injected"].get("Firehose", 0)
    assert injected > 20 and set(statuses) <= {202, 503} and statuses.count(202) >= 10
    faults({"Firehose": 1.0})  # the stream takes nothing: the client is told to retry, nothing is half-written
    batch = new_events(live["users"], live["tracks"], 4, seed=99)
    resp = live["session"].post(f"{live['url']}/v1/events", json={"events": batch}, headers=KEY, timeout=30)
    assert resp.status_code == 503 and resp.headers.get("Retry-After")
    faults({})
    delivered = raw_event_ids(live["config"])
    assert not {e["event_id"] for e in batch} & set(delivered)
    assert all(delivered[e] >= 1 for e in live["acked"])


def test_dynamodb_throttled_reads_degrade_and_events_are_kept(live: dict[str, Any], faults: Any) -> None:
    faults({"DynamoDB": 1.0})
    resp = home(live, live["users"][2])
    assert resp.status_code == 200 and resp.json()["fallback"] is True
    track = "not-in-any-cache"  # a track served from the cache would still answer 200, as it should
    resp = live["session"].get(f"{live['url']}/v1/tracks/{track}", headers=KEY, timeout=30)
    assert resp.status_code == 503 and resp.headers.get("Retry-After")
    before = faults({"DynamoDB": 1.0})["injected"]["DynamoDB"]
    statuses = [post(live, 5, seed=200 + i).status_code for i in range(3)]  # 5 listeners each
    assert set(statuses) <= {202, 503}
    # A throttled table is given up on for the rest of the request: 3 attempts each for the idempotency record,
    # the track vectors and the first listener's profile, not 3 more for every further listener.
    assert faults({"DynamoDB": 1.0})["injected"]["DynamoDB"] - before < 3 * 3 * 5
    faults({})
    delivered = raw_event_ids(live["config"])
    assert all(delivered[e] >= 1 for e in live["acked"])
