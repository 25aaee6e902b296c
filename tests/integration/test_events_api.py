"""POST /v1/events through API Gateway REST proxy events, against the twin (moto Firehose/DynamoDB, redis)."""

from __future__ import annotations

import gzip
import io
import json
import time
import uuid
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest
import redis

from encore.cache import generation_key, session_key
from encore.clients import get_client
from encore.config import EncoreConfig
from encore.vectors import decode, encode
from encore_local.apigw import LambdaContext, load_handler, rest_event
from encore_local.jobs import run_job
from encore_local.twin.services import TwinEndpoints

pytestmark = pytest.mark.integration
Post = Callable[..., tuple[int, dict[str, Any], dict[str, str]]]


@pytest.fixture(scope="module")
def handler(twin: TwinEndpoints, config: EncoreConfig) -> ModuleType:
    return load_handler("events", config)


@pytest.fixture
def post(handler: ModuleType) -> Post:
    def _post(
        body: Any, *, raw: str | bytes | None = None, content_type: str = "application/json"
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        payload = raw if raw is not None else json.dumps(body)
        event = rest_event("POST", "/v1/events", body=payload, headers=[("Content-Type", content_type)],
                           api_key="twin-key")  # fmt: skip
        resp = handler.lambda_handler(event, LambdaContext("events"))
        headers = {k: v[-1] for k, v in (resp.get("multiValueHeaders") or {}).items()}
        return resp["statusCode"], json.loads(resp["body"]), headers

    return _post


def make_event(user: str, track: str = "t-1", **overrides: Any) -> dict[str, Any]:
    now = int(time.time() * 1000)
    event = {
        "event_id": str(uuid.uuid4()),
        "user_id": user,
        "track_id": track,
        "action": "complete",
        "timestamp": now - 1000,
        "played_ms": 180_000,
        "track_duration_ms": 180_000,
        "region": "US",
        "source": "app",
        "context": "home",
    }
    event.update(overrides)
    return event


def raw_event_ids(config: EncoreConfig) -> list[str]:
    s3 = get_client("s3")
    ids: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=config.resources.lake_bucket, Prefix="raw/events/"):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=config.resources.lake_bucket, Key=obj["Key"])["Body"].read()
            text = gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body
            ids += [json.loads(line).get("event_id", "") for line in text.splitlines() if line.strip().startswith(b"{")]
    return ids


def user() -> str:
    return f"u-{uuid.uuid4().hex[:10]}"


def test_a_full_batch_lands_once_even_when_sent_twice(post: Post, config: EncoreConfig) -> None:
    events = [make_event(user(), f"t-{i % 37}") for i in range(500)]
    status, body, _ = post({"events": events})
    assert status == 202 and body["accepted"] == 500
    again, body_again, _ = post({"events": events})
    assert again == 202 and body_again == {**body, "replayed": True}  # the first answer, not a second application
    assert body["replayed"] is False
    ids = {e["event_id"] for e in events}
    landed = [i for i in raw_event_ids(config) if i in ids]
    assert set(landed) == ids  # in the raw zone (at least once)
    run_job("curate_events", config, lookback_days=1)
    s3 = get_client("s3")
    keys = [
        o["Key"] for o in s3.list_objects_v2(Bucket=config.resources.lake_bucket, Prefix="curated/events/")["Contents"]
    ]
    frames = []
    for key in keys:
        if key.endswith(".parquet"):
            data = s3.get_object(Bucket=config.resources.lake_bucket, Key=key)["Body"].read()
            frames.append(pd.read_parquet(io.BytesIO(data)))
    curated = pd.concat(frames)
    mine = curated[curated["event_id"].isin(ids)]
    assert len(mine) == 500 and mine["event_id"].is_unique


def test_one_bad_event_rejects_the_batch_and_writes_nothing(post: Post, config: EncoreConfig) -> None:
    before = len(raw_event_ids(config))
    events = [make_event(user()) for _ in range(5)]
    events[3]["played_ms"] = -20
    status, body, _ = post({"events": events})
    assert status == 400
    assert body["errors"] == [{"field": "events.3.played_ms", "reason": "Input should be greater than or equal to 0"}]
    assert "nothing was accepted" in body["reason"]
    assert len(raw_event_ids(config)) == before


@pytest.mark.parametrize(
    ("payload", "status", "fragment"),
    [
        ('{"events": [', 400, "not valid JSON"),
        ("", 400, "body is empty"),
        ("[1, 2]", 400, "must be a JSON object"),
        ('{"events": []}', 400, "at least 1 item"),
        ("{}", 400, "Field required"),
        ("BIG", 413, "over the 1024 KiB limit"),
        ("TOO_MANY", 400, "at most 500 items"),
        ("ACTION", 400, "'listen', 'skip' or 'complete'"),
        ("DURATION", 400, "greater than 0"),
        ("FUTURE", 400, "in the future"),
        ("SECONDS", 400, "looks like seconds"),
        ("STRING_NUMBER", 400, "valid integer"),
    ],
)
def test_bad_requests_get_a_clear_4xx(post: Post, payload: str, status: int, fragment: str) -> None:
    u = user()
    special = {
        "BIG": json.dumps({"events": [make_event(u, lyrics="x" * 2_000_000)]}),
        "TOO_MANY": json.dumps({"events": [make_event(u) for _ in range(501)]}),
        "ACTION": json.dumps({"events": [make_event(u, action="rewind")]}),
        "DURATION": json.dumps({"events": [make_event(u, track_duration_ms=-5)]}),
        "FUTURE": json.dumps({"events": [make_event(u, timestamp=int(time.time() * 1000) + 86_400_000)]}),
        "SECONDS": json.dumps({"events": [make_event(u, timestamp=int(time.time()))]}),
        "STRING_NUMBER": json.dumps({"events": [make_event(u, played_ms="100")]}),
    }
    code, body, _ = post(None, raw=special.get(payload, payload))
    assert code == status
    text = body["reason"] + " ".join(e["reason"] for e in body.get("errors", []))
    assert fragment in text, body
    assert body["error"] in ("bad_request", "payload_too_large")


@pytest.fixture
def flaky_firehose(monkeypatch: pytest.MonkeyPatch, config: EncoreConfig) -> dict[str, int]:
    """Firehose that fails the first ``fail`` records of each call for ``calls`` calls, as a throttled stream does."""
    client = get_client("firehose", config.region)  # the handler's client
    real = client.put_record_batch
    state = {"calls": 0, "fail_calls": 2, "fail": 7}

    def put_record_batch(**kwargs: Any) -> dict[str, Any]:
        state["calls"] += 1
        if state["calls"] > state["fail_calls"]:
            return real(**kwargs)
        records = kwargs["Records"]
        passed = real(**{**kwargs, "Records": records[state["fail"] :]}) if len(records) > state["fail"] else None
        results = [{"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "slow down"}] * min(
            state["fail"], len(records)
        )
        results += passed["RequestResponses"] if passed else []
        return {"FailedPutCount": min(state["fail"], len(records)), "RequestResponses": results}

    monkeypatch.setattr(client, "put_record_batch", put_record_batch)
    return state


def test_firehose_partial_failures_are_retried_and_nothing_is_lost(
    post: Post, config: EncoreConfig, flaky_firehose: dict[str, int]
) -> None:
    events = [make_event(user()) for _ in range(20)]
    status, body, _ = post({"events": events})
    assert status == 202 and body["stream_retries"] == 14
    landed = [i for i in raw_event_ids(config) if i in {e["event_id"] for e in events}]
    assert sorted(landed) == sorted(e["event_id"] for e in events)


def test_a_stream_that_stays_down_gives_503_and_a_retry_succeeds(
    post: Post, config: EncoreConfig, flaky_firehose: dict[str, int]
) -> None:
    flaky_firehose["fail_calls"] = 10
    events = [make_event(user()) for _ in range(3)]
    status, body, headers = post({"events": events})
    assert status == 503 and headers["Retry-After"] == "2" and "retry" in body["reason"]
    flaky_firehose["fail_calls"] = 0
    status, body, _ = post({"events": events})  # not answered from the idempotency store: it failed the first time
    assert status == 202 and body["accepted"] == 3
    assert {e["event_id"] for e in events} <= set(raw_event_ids(config))


def _put_vector(config: EncoreConfig, track: str, vector: list[float]) -> None:
    get_client("dynamodb").put_item(
        TableName=config.resources.tracks_table,
        Item={"track_id": {"S": f"vec#{track}"}, "cf_vector": {"B": encode(vector)}, "model_version": {"S": "m1"}},
    )


def _put_catalog(config: EncoreConfig, tracks: list[str]) -> None:
    """Catalog entries (what the nightly catalog load writes), so the events path knows these tracks."""
    ddb = get_client("dynamodb")
    for i in range(0, len(tracks), 25):
        items = [{"PutRequest": {"Item": {"track_id": {"S": t}, "name": {"S": t}}}} for t in tracks[i : i + 25]]
        ddb.batch_write_item(RequestItems={config.resources.tracks_table: items})


def test_qualifying_plays_move_the_session_vector(post: Post, config: EncoreConfig, twin: TwinEndpoints) -> None:
    cache = redis.Redis.from_url(twin.cache_url)
    u = user()
    _put_vector(config, "tv-a", [1.0, 0.0, 0.0])
    _put_vector(config, "tv-b", [0.0, 1.0, 0.0])
    post({"events": [make_event(u, "tv-a")]})
    assert np.allclose(decode(cache.get(session_key(u))), [1, 0, 0])  # type: ignore[arg-type]
    now = int(time.time() * 1000)
    status, body, _ = post(
        {
            "events": [
                make_event(u, "tv-b", timestamp=now - 500),
                make_event(u, "tv-a", action="skip", played_ms=4_000, timestamp=now - 400),  # does not qualify
                make_event(u, "no-vector", timestamp=now - 300),  # unknown to the model: leaves the vector as it was
            ]
        }
    )
    assert status == 202 and body["qualifying_plays"] == 2 and body["sessions_updated"] == 1
    assert np.allclose(decode(cache.get(session_key(u))), [0.5, 0.5, 0])  # type: ignore[arg-type]
    assert 0 < cache.ttl(session_key(u)) <= config.session.ttl_seconds


def test_events_invalidate_cached_results_and_update_recently_played(
    post: Post, config: EncoreConfig, twin: TwinEndpoints
) -> None:
    cache = redis.Redis.from_url(twin.cache_url)
    u = user()
    before = int(cache.get(generation_key(u)) or 0)
    now = int(time.time() * 1000)
    _put_catalog(config, [f"rp-{i}" for i in range(3)] + [f"more-{i}" for i in range(60)])
    post({"events": [make_event(u, f"rp-{i}", timestamp=now - 10_000 + i) for i in range(3)]})
    assert int(cache.get(generation_key(u)) or 0) == before + 1
    item = get_client("dynamodb").get_item(TableName=config.resources.users_table, Key={"user_id": {"S": u}})["Item"]
    assert [v["S"] for v in item["recently_played"]["L"]] == ["rp-2", "rp-1", "rp-0"]
    post({"events": [make_event(u, f"more-{i}", timestamp=now + i) for i in range(60)]})
    item = get_client("dynamodb").get_item(TableName=config.resources.users_table, Key={"user_id": {"S": u}})["Item"]
    played = [v["S"] for v in item["recently_played"]["L"]]
    assert len(played) == config.session.recently_played_max and played[0] == "more-59"


def test_cache_down_degrades_but_accepts(post: Post, config: EncoreConfig, handler: ModuleType) -> None:
    real = handler.deps.cache.url
    handler.deps.cache.url = "redis://127.0.0.1:1/0"  # nothing listens there
    try:
        events = [make_event(user())]
        status, body, _ = post({"events": events})
    finally:
        handler.deps.cache.url = real
    assert status == 202 and body["degraded"] == ["cache_unavailable"]
    assert events[0]["event_id"] in raw_event_ids(config)


def test_unknown_route_is_404(handler: ModuleType) -> None:
    resp = handler.lambda_handler(rest_event("GET", "/v1/nothing"), LambdaContext("events"))
    assert resp["statusCode"] == 404 and "no route" in json.loads(resp["body"])["reason"]


def _profile(config: EncoreConfig, u: str) -> dict[str, Any] | None:
    item = get_client("dynamodb").get_item(TableName=config.resources.users_table, Key={"user_id": {"S": u}})
    return item.get("Item")


def test_an_event_id_twice_in_one_batch_is_refused_naming_both(post: Post, config: EncoreConfig) -> None:
    u = user()
    events = [make_event(u) for _ in range(3)]
    status, body, _ = post({"events": [*events, {**events[1], "played_ms": 1000}]})
    assert status == 400 and body["errors"][0]["field"] == "events"
    assert "events.3 repeats the event_id of events.1" in body["errors"][0]["reason"]
    assert not {e["event_id"] for e in events} & set(raw_event_ids(config)) and _profile(config, u) is None


def test_the_same_event_ids_with_other_content_are_a_conflict_and_the_first_is_kept(
    post: Post, config: EncoreConfig
) -> None:
    u = user()
    _put_catalog(config, ["same-a"])
    events = [make_event(u, "same-a")]
    assert post({"events": events})[0] == 202
    status, body, _ = post({"events": [{**events[0], "track_id": "other"}]})
    assert status == 409 and body["error"] == "conflict" and "other content" in body["reason"]
    assert raw_event_ids(config).count(events[0]["event_id"]) == 1
    assert [v["S"] for v in _profile(config, u)["recently_played"]["L"]] == ["same-a"]  # type: ignore[index]


def test_tracks_the_catalog_does_not_know_are_kept_but_stay_out_of_recently_played(
    post: Post, config: EncoreConfig
) -> None:
    u = user()
    _put_catalog(config, ["known-1"])
    now = int(time.time() * 1000)
    events = [make_event(u, "known-1", timestamp=now - 3000)] + [
        make_event(u, f"nobody-knows-{i}", timestamp=now - 2000 + i) for i in range(25)
    ]
    status, body, _ = post({"events": events})
    assert status == 202 and body["accepted"] == 26
    assert len(body["unknown_tracks"]) == 20 and body["unknown_tracks"][0] == "nobody-knows-0"
    assert {e["event_id"] for e in events} <= set(raw_event_ids(config))  # the catalog may be behind: kept
    assert [v["S"] for v in _profile(config, u)["recently_played"]["L"]] == ["known-1"]  # type: ignore[index]
    status, body, _ = post({"events": [make_event(user(), "nobody-knows-x")]})
    assert status == 202 and body["unknown_tracks"] == ["nobody-knows-x"]


def test_a_batch_of_500_bad_events_gets_a_small_answer_that_counts_what_it_does_not_list(post: Post) -> None:
    events = [make_event(user(), played_ms=-1, track_duration_ms=0, region="ZZ") for _ in range(500)]
    status, body, _ = post({"events": events})
    assert status == 400 and body["reason"].startswith("500 of the events are invalid")
    assert len(body["errors"]) == 20 and body["errors_not_listed"] == 1500 - 20
    assert len(json.dumps(body)) < 4096


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_a_body_not_sent_as_json_is_415(post: Post, config: EncoreConfig, content_type: str) -> None:
    events = [make_event(user())]
    status, body, _ = post({"events": events}, content_type=content_type)
    assert status == 415 and body["error"] == "unsupported_media_type" and "application/json" in body["reason"]
    assert events[0]["event_id"] not in raw_event_ids(config)
