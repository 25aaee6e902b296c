"""The read API through API Gateway events, after the whole pipeline ran on the twin (jobs, training, gate,
deploy to the twin's endpoint, vectors loaded): every route, the fallbacks, the cache, the errors."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pandas as pd
import pytest
import redis
import requests

from encore.cache import track_metadata_key
from encore.catalog import Catalog
from encore.clients import get_client
from encore.pipeline import NIGHTLY
from encore_local.apigw import call, home, load_handler
from encore_local.twin.faults import set_faults

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def served(served_lake: dict[str, Any]) -> dict[str, Any]:
    config = served_lake["config"]
    tracks = pd.read_csv(served_lake["sim"] / "catalog/tracks.csv", keep_default_na=False)
    return {
        **served_lake,
        "api": load_handler("api", config),
        "events": load_handler("events", config),
        "tracks": tracks,
    }


def test_home_recommendations_come_from_the_model(served: dict[str, Any]) -> None:
    user = served["listener"]
    status, body = home(served["api"], user, {"limit": "10"})
    assert status == 200, body
    assert (
        body["fallback"] is False and body["model_version"] == "encore-serving-test"
    )  # the training job: encore-<execution>
    assert len(body["items"]) == 10 and all(i["source"] == "model" and i["name"] for i in body["items"])
    artists = pd.Series([i["artist_name"] for i in body["items"]]).value_counts()
    assert artists.max() <= served["config"].serving.max_per_artist


def test_recently_played_is_excluded_and_the_cap_applies(served: dict[str, Any]) -> None:
    user = served["listener"]
    played = set(get_profile(served, user).get("recently_played", []))
    query = {"limit": "30", "max_per_artist": "1"}
    status, body = home(served["api"], user, query)
    assert status == 200
    ids = [i["track_id"] for i in body["items"]]
    assert not played & set(ids)
    assert pd.Series([i["artist_name"] for i in body["items"]]).value_counts().max() == 1


def get_profile(served: dict[str, Any], user: str) -> dict[str, Any]:
    status, body = call(served["api"], "GET", f"/v1/users/{user}")
    return body if status == 200 else {}


def test_unknown_listener_gets_trending_flagged(served: dict[str, Any]) -> None:
    user = f"new-{uuid.uuid4().hex[:8]}"
    status, body = home(served["api"], user)
    assert status == 200 and body["fallback"] is True and body["fallback_reason"] == "unknown_user"
    assert body["items"] and all(i["source"] == "trending" for i in body["items"])


def test_next_song_and_similar(served: dict[str, Any]) -> None:
    user, track = served["listener"], served["tracks"]["track_id"].iloc[0]
    status, body = call(
        served["api"],
        "GET",
        f"/v1/users/{user}/next",
        {"track_id": track, "limit": "5"},
    )
    assert status == 200 and body["surface"] == "next" and len(body["items"]) == 5
    # next song's ranking stage reports each source's score scaled by the candidates' best (HybridModel._scaled):
    # a cosine can be negative, so the range is [-1, 1], not [0, 1]
    assert all(-1 <= i["cf"] <= 1 and -1 <= i["content"] <= 1 for i in body["items"])
    assert [i["score"] for i in body["items"]] == sorted((i["score"] for i in body["items"]), reverse=True)
    assert track not in {i["track_id"] for i in body["items"]}
    status, body = call(
        served["api"],
        "GET",
        f"/v1/tracks/{track}/similar",
        {"limit": "5"},
    )
    assert status == 200 and body["surface"] == "similar" and len(body["items"]) == 5
    assert all(0 <= i["cf"] <= 1 and 0 <= i["content"] <= 1 for i in body["items"])  # min-max over the union


def test_a_new_event_invalidates_the_cached_answer(served: dict[str, Any]) -> None:
    user = served["listener"]
    home(served["api"], user)
    api = served["api"]
    before = api.deps.serving_version
    _, first = home(api, user)
    _, second = home(api, user)
    assert [i["track_id"] for i in first["items"]] == [i["track_id"] for i in second["items"]] and before
    top = first["items"][0]["track_id"]
    event = {
        "event_id": str(uuid.uuid4()),
        "user_id": user,
        "track_id": top,
        "action": "complete",
        "timestamp": int(time.time() * 1000),
        "played_ms": 200_000,
        "track_duration_ms": 200_000,
        "region": "US",
    }
    status, _ = call(served["events"], "POST", "/v1/events", body={"events": [event]})
    assert status == 202
    _, third = home(api, user)
    assert top not in [i["track_id"] for i in third["items"]]  # just played: excluded, and not served from cache


def test_endpoint_down_falls_back_to_trending(served: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    user = served["listener"]
    monkeypatch.setattr(served["api"].deps.model, "endpoint", "no-such-endpoint")
    monkeypatch.setattr(served["api"].deps, "serving_version", "other")  # not from the cache
    status, body = home(served["api"], user, {"limit": "7"})
    assert status == 200 and body["fallback"] is True and body["fallback_reason"] == "endpoint_error"
    assert len(body["items"]) == 7


def test_cache_down_answers_uncached(served: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    user = served["listener"]
    monkeypatch.setattr(served["api"].deps.cache, "url", "redis://127.0.0.1:1/0")
    status, body = home(served["api"], user)
    assert status == 200 and body["fallback"] is False and body["items"]


def test_tracks_charts_trending_and_profiles(served: dict[str, Any]) -> None:
    api, track = served["api"], served["tracks"].iloc[0]
    status, body = call(
        api,
        "GET",
        f"/v1/tracks/{track.track_id}",
    )
    assert status == 200 and body["name"] == track.track_name
    status, body = call(
        api,
        "GET",
        "/v1/charts/US",
        {"window": "day", "at": "2026-09-10T12:00:00Z"},
    )
    assert status == 200 and body["period"] == "2026-09-10" and body["items"][0]["rank"] == 1
    status, body = call(api, "GET", "/v1/trending", {"region": "BR", "limit": "5"})
    assert status == 200 and len(body["items"]) == 5
    user = f"p-{uuid.uuid4().hex[:8]}"
    status, body = call(
        api,
        "PUT",
        f"/v1/users/{user}",
        body={"display_name": "Ana", "region": "VN"},
    )
    assert status == 200 and body["region"] == "VN" and body["display_name"] == "Ana"


@pytest.mark.parametrize(
    ("method", "path", "query", "body", "status", "fragment"),
    [
        ("GET", "/v1/tracks/nope", {}, None, 404, "not in the catalog"),
        ("GET", "/v1/tracks/nope/similar", {}, None, 404, "not in the catalog"),
        ("GET", "/v1/users/u1/recommendations", {"limit": "0"}, None, 400, "limit"),
        ("GET", "/v1/users/u1/recommendations", {"limit": "lots"}, None, 400, "limit"),
        ("GET", "/v1/users/u1/next", {}, None, 400, "track_id"),
        ("GET", "/v1/charts/XX", {}, None, 400, "ISO 3166-1"),
        ("GET", "/v1/charts/US", {"window": "week"}, None, 400, "window"),
        ("PUT", "/v1/users/u1", {}, {"region": "ZZ"}, 400, "ISO"),
        # an array where the object belongs (Powertools alone would take its first element and answer 200)
        ("PUT", "/v1/users/u1", {}, [{"region": "US"}], 400, "not an array"),
        ("PUT", "/v1/users/u1", {}, {"region": "US", "signup_date": "9999-12-31"}, 400, "between 2000-01-01 and today"),
        (
            "GET",
            "/v1/charts/US",
            {"window": "hour", "at": "0001-01-01T00:00:00+14:00"},
            None,
            400,
            "outside the years 1 to 9999",
        ),
        (
            "GET",
            "/v1/charts/US",
            {"window": "day", "at": "9999-12-31T23:59:59-14:00"},
            None,
            400,
            "outside the years 1 to 9999",
        ),
        ("GET", "/v1/users/nobody-here", {}, None, 404, "no profile"),
    ],
)
def test_errors_are_4xx_with_a_reason(
    served: dict[str, Any], method: str, path: str, query: dict[str, str], body: Any, status: int, fragment: str,
) -> None:  # fmt: skip
    code, answer = call(served["api"], method, path, query, body)
    assert code == status, answer
    assert fragment in json.dumps(answer)


def test_health_and_openapi(served: dict[str, Any]) -> None:
    status, body = call(served["api"], "GET", "/v1/health")
    assert status == 200 and body["status"] == "ok"
    status, spec = call(served["api"], "GET", "/v1/openapi.json")
    assert status == 200 and "/v1/users/{user_id}/recommendations" in spec["paths"]


def test_vectors_of_the_promoted_model_are_loaded(served: dict[str, Any]) -> None:
    config = served["config"]
    count = get_client("dynamodb").scan(TableName=config.resources.users_table, Select="COUNT")["Count"]
    assert count > 100
    tasks = [s["state"] for s in served["run"].states if s["type"] == "Task" and s["status"] == "succeeded"]
    assert tasks[:9] == [*(step.name for step in NIGHTLY[:9])]  # through deploy, in order
    assert tasks[-3:] == ["describe endpoint", "load_vectors", "batch_recommend"]  # the prod stage computes lists


@pytest.fixture
def dynamodb_throttled(served: dict[str, Any]) -> Any:
    """Every DynamoDB call answered ProvisionedThroughputExceeded by the twin, as AWS answers past capacity."""
    set_faults(served["twin"].aws_endpoint, {"DynamoDB": 1.0})
    try:
        yield
    finally:
        set_faults(served["twin"].aws_endpoint, {})


def test_dynamodb_throttled_degrades_reads_and_answers_503_for_what_cannot_degrade(
    served: dict[str, Any], dynamodb_throttled: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    api, user = served["api"], served["listener"]
    monkeypatch.setattr(api.deps, "serving_version", "not-cached")
    unknown_track = "no-such-track-throttled"
    status, body = call(api, "GET", f"/v1/tracks/{unknown_track}")  # fmt: skip
    assert status == 503 and body["error"] == "unavailable" and "retry" in body["reason"]
    status, body = call(api, "GET", f"/v1/users/{user}")
    assert status == 503
    # The home page still answers, flagged: the profile read fails; a listener with a session vector in the
    # cache still reaches the model, and then the metadata read fails (charts are throttled too, so the
    # trending list may be empty; what matters is a 200 with the reason, not a 500). No metadata is cached
    # anywhere, so the answer needs the table.
    api.deps.catalog = Catalog(api.deps.catalog.tracks, api.deps.cache)  # nothing in this instance's memory
    shared = redis.Redis.from_url(served["twin"].cache_url)
    for key in shared.scan_iter(track_metadata_key("*")):
        shared.delete(key)
    status, body = home(api, user, {"limit": "5", "max_per_artist": "2"})
    assert status == 200 and body["fallback"] is True
    assert body["fallback_reason"] in ("profiles_unavailable", "tracks_unavailable")
    assert set_faults(served["twin"].aws_endpoint, {"DynamoDB": 1.0})["injected"]["DynamoDB"] >= 3
    with pytest.raises(requests.HTTPError):  # only DynamoDB and Firehose faults are emulated faithfully
        set_faults(served["twin"].aws_endpoint, {"S3": 1.0})


def test_the_model_names_artists_so_only_returned_tracks_are_decorated(served: dict[str, Any]) -> None:
    api, user = served["api"], served["listener"]
    read: list[list[str]] = []
    tracks = api.deps.catalog.tracks
    real = tracks.metadata

    def metadata(track_ids: Any) -> Any:
        read.append(list(track_ids))
        return real(track_ids)

    tracks.metadata = metadata
    api.deps.catalog = Catalog(tracks, api.deps.cache)
    shared = redis.Redis.from_url(served["twin"].cache_url)
    for key in shared.scan_iter(track_metadata_key("*")):
        shared.delete(key)
    try:
        status, body = home(api, user, {"limit": "4", "max_per_artist": "1"})
    finally:
        del tracks.metadata
    assert status == 200 and body["fallback"] is False and len(body["items"]) == 4
    returned = {i["track_id"] for i in body["items"]}
    assert read and all(set(batch) <= returned for batch in read)  # never the 3x candidates the model sent
    artists = [served["tracks"].set_index("track_id").loc[t, "artist_id"] for t in returned]
    assert len(set(artists)) == 4
