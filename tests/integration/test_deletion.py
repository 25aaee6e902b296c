"""Deleting a listener end to end on the twin (a stack of its own, the dev stage): what goes at once through the
API, then the purge step and the jobs after it, until nothing of the listener is left but the raw zone's
objects, which go when its retention ends."""

from __future__ import annotations

import importlib
import json
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import redis

from encore.cache import generation_key, session_key
from encore.clients import get_client
from encore.config import EncoreConfig
from encore.resources import LISTENER_ATTRIBUTE, LISTENER_INDEX
from encore.stores import VECTOR_PREFIX, read_json
from encore_local.apigw import call, load_handler
from encore_local.jobs import run_job
from encore_local.lake import import_simulation, read_table
from encore_local.simulator import SimulationSummary
from encore_local.twin.services import TwinEndpoints

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _index(config: EncoreConfig, user: str) -> list[str]:
    found = get_client("dynamodb").query(
        TableName=config.resources.idempotency_table,
        IndexName=LISTENER_INDEX,
        KeyConditionExpression="#l = :u",
        ExpressionAttributeNames={"#l": LISTENER_ATTRIBUTE},
        ExpressionAttributeValues={":u": {"S": user}},
    )
    return [item["id"]["S"] for item in found["Items"]]


@pytest.fixture(scope="module")
def deleted(
    dev_stage: EncoreConfig,
    twin: TwinEndpoints,
    small_sim: tuple[Path, SimulationSummary],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    """The small simulation curated; then a listener with history plays, is recommended to, and is deleted."""
    config = dev_stage
    import_simulation(config, small_sim[0], progress=False)
    run_job("curate_events", config, run_time=_now_iso(), lookback_days=0)
    before = read_table(config, config.lake.curated_events, tmp_path_factory.mktemp("before"))
    user = str(before["user_id"].value_counts().index[0])
    events, api = load_handler("events", config), load_handler("api", config)
    track = str(before.loc[before["user_id"] == user, "track_id"].iloc[0])
    now = int(time.time() * 1000)
    batch = {"events": [{"event_id": str(uuid.uuid4()), "user_id": user, "track_id": track, "action": "complete",
                         "timestamp": now - 1000, "played_ms": 200_000, "track_duration_ms": 200_000,
                         "region": "US"}]}  # fmt: skip
    status, accepted = call(events, "POST", "/v1/events", body=batch)
    assert status == 202, accepted
    # what a loaded model would have left: the listener's vector item
    get_client("dynamodb").put_item(
        TableName=config.resources.users_table,
        Item={"user_id": {"S": VECTOR_PREFIX + user}, "vector": {"B": b"\0" * 16}, "model_version": {"S": "m1"}},
    )
    index_before = _index(config, user)
    cache = redis.Redis.from_url(twin.cache_url)
    generation_before = int(cache.get(generation_key(user)) or 0)
    status, answer = call(api, "DELETE", f"/v1/users/{user}")  # fmt: skip
    return {"config": config, "user": user, "answer": answer, "status": status, "api": api, "before": before,
            "index_before": index_before, "generation_before": generation_before, "cache": cache,
            "tmp": tmp_path_factory}  # fmt: skip


def test_the_answer_says_what_is_gone_now_and_what_goes_next(deleted: dict[str, Any]) -> None:
    answer = deleted["answer"]
    assert deleted["status"] == 202 and answer["user_id"] == deleted["user"] and answer["profile_found"] is True
    assert any("idempotency records of the listener's event batches (1)" in line for line in answer["deleted_now"])
    assert any("curated zone" in line for line in answer["next_run"])
    assert any("raw events" in line for line in answer["later"])


def test_profile_session_cached_results_and_idempotency_records_go_at_once(deleted: dict[str, Any]) -> None:
    config, user = deleted["config"], deleted["user"]
    ddb = get_client("dynamodb")
    for key in (user, VECTOR_PREFIX + user):
        assert "Item" not in ddb.get_item(TableName=config.resources.users_table, Key={"user_id": {"S": key}})
    cache = deleted["cache"]
    assert cache.get(session_key(user)) is None
    # every cached answer is keyed by an earlier generation: none can be read again
    assert int(cache.get(generation_key(user)) or 0) > deleted["generation_before"]
    assert 0 < cache.ttl(generation_key(user)) <= 300
    records = [k.removeprefix(f"listener#{user}#") for k in deleted["index_before"]]
    assert len(records) == 1 and _index(config, user) == []
    for record in records:
        assert "Item" not in ddb.get_item(TableName=config.resources.idempotency_table, Key={"id": {"S": record}})
    status, home = call(deleted["api"], "GET", f"/v1/users/{user}/recommendations")  # fmt: skip
    assert status == 200 and home["fallback_reason"] == "unknown_user"
    status, _ = call(deleted["api"], "GET", f"/v1/users/{user}")  # fmt: skip
    assert status == 404


def test_a_second_delete_is_safe(deleted: dict[str, Any]) -> None:
    user = deleted["user"]
    status, again = call(deleted["api"], "DELETE", f"/v1/users/{user}")  # fmt: skip
    assert status == 202 and again["profile_found"] is False


def test_the_purge_and_the_jobs_after_it_leave_nothing_of_the_listener(deleted: dict[str, Any]) -> None:
    config, user, tmp = deleted["config"], deleted["user"], deleted["tmp"]
    assert (deleted["before"]["user_id"] == user).sum() > 0
    purged = run_job("purge_listeners", config, run_time=_now_iso())
    assert purged.result["events_removed"] == (deleted["before"]["user_id"] == user).sum()
    request = read_json(get_client("s3"), config.resources.lake_bucket, config.lake.deletion(user))
    assert request["purged_at_ms"] and request["curated_events_removed"] == purged.result["events_removed"]
    # the raw zone still holds the listener's events (until its retention ends): curating again keeps them out
    run_job("curate_events", config, run_time=_now_iso(), lookback_days=0)
    curated = read_table(config, config.lake.curated_events, tmp.mktemp("after"))
    assert user not in set(curated["user_id"]) and len(curated) > 0
    assert len(curated) == len(deleted["before"]) - purged.result["events_removed"]
    run_job("build_features", config, run_time=_now_iso())
    for table in ("interactions", "transitions"):
        features = read_table(config, f"{config.lake.features}{table}/", tmp.mktemp(table))
        if "user_id" in features:
            assert user not in set(features["user_id"]) and len(features) > 0, table
    # a second purge finds nothing more, and leaves the request's record as the first one wrote it
    assert run_job("purge_listeners", config, run_time=_now_iso()).result["events_removed"] == 0
    assert read_json(get_client("s3"), config.resources.lake_bucket, config.lake.deletion(user)) == request


def test_vectors_of_a_model_trained_before_the_purge_are_never_loaded_again(deleted: dict[str, Any]) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "glue_jobs"))
    load_vectors = importlib.import_module("load_vectors")
    config, s3 = deleted["config"], get_client("s3")
    requests = {
        "gone-purged": {"requested_at_ms": 1_000, "purged_at_ms": 2_000},
        "gone-pending": {"requested_at_ms": 3_000},
    }
    for user, body in requests.items():
        s3.put_object(Bucket=config.resources.lake_bucket, Key=config.lake.deletion(user),
                      Body=json.dumps({"user_id": user, **body}).encode())  # fmt: skip
    try:
        assert {"gone-purged", "gone-pending"} <= load_vectors.deleted_since(config, 1_500)  # promoted before the purge
        after = load_vectors.deleted_since(config, 2_500)  # trained after the purge: its vectors are clean
        assert "gone-purged" not in after and "gone-pending" in after  # not purged yet: held whatever the model
        assert {"gone-purged", "gone-pending"} <= load_vectors.deleted_since(config, None)  # promotion time unknown
    finally:
        for user in requests:
            s3.delete_object(Bucket=config.resources.lake_bucket, Key=config.lake.deletion(user))


def test_the_request_is_json_in_the_lake(deleted: dict[str, Any]) -> None:
    config, user = deleted["config"], deleted["user"]
    body = get_client("s3").get_object(Bucket=config.resources.lake_bucket, Key=config.lake.deletion(user))["Body"]
    request = json.loads(body.read())
    # a DELETE sent again moves the request on (what the listener played between the two goes too)
    assert request["user_id"] == user and request["requested_at_ms"] >= deleted["answer"]["purge_requested_at_ms"]
    assert pd.Timestamp(request["requested_at_ms"], unit="ms").year >= 2026
