"""The data contracts: what they accept, and the reason they give for what they reject."""

from __future__ import annotations

import time
from typing import Any

import pytest
from pydantic import ValidationError

from encore.models import (
    MAX_BATCH_EVENTS,
    EventBatch,
    InferenceRequest,
    ListeningEvent,
    ProfileUpdate,
    Track,
    UserProfile,
    field_errors,
)

pytestmark = pytest.mark.unit
NOW_MS = 1_790_000_000_000


def event(**overrides: Any) -> dict[str, Any]:
    base = {
        "event_id": "0b9f6a0e-3c1d-4c7e-9a55-2f5d1f0f6a01",
        "user_id": "u000123",
        "track_id": "5SuOikwiRyPMVoIQDJUgSV",
        "action": "complete",
        "timestamp": NOW_MS - 60_000,
        "played_ms": 200_000,
        "track_duration_ms": 200_000,
        "session_id": "1714ae5728c8e21a",
        "region": "VN",
        "source": "app",
        "context": "home",
        "recommendation_id": "rec-1",
    }
    base.update(overrides)
    return base


def reasons(data: dict[str, Any], model: Any = ListeningEvent) -> dict[str, str]:
    with pytest.raises(ValidationError) as info:
        model.model_validate(data, context={"now_ms": NOW_MS})
    return {e["field"]: e["reason"] for e in field_errors(info.value)}


def test_a_valid_event_round_trips() -> None:
    parsed = ListeningEvent.model_validate(event(), context={"now_ms": NOW_MS})
    assert parsed.model_dump(mode="json") == event()


def test_optional_fields_default() -> None:
    data = event()
    for key in ("session_id", "source", "context", "recommendation_id"):
        data.pop(key)
    parsed = ListeningEvent.model_validate(data, context={"now_ms": NOW_MS})
    assert (parsed.source, parsed.context, parsed.session_id) == ("app", "other", None)


@pytest.mark.parametrize(
    ("overrides", "field", "fragment"),
    [
        ({"action": "pause"}, "action", "'listen', 'skip' or 'complete'"),
        ({"played_ms": -1}, "played_ms", "greater than or equal to 0"),
        ({"track_duration_ms": 0}, "track_duration_ms", "greater than 0"),
        ({"timestamp": NOW_MS + 2 * 3600 * 1000}, "timestamp", "in the future"),
        ({"timestamp": 1_790_000_000}, "timestamp", "looks like seconds"),
        ({"timestamp": "1790000000000"}, "timestamp", "valid integer"),
        ({"played_ms": 12.5}, "played_ms", "valid integer"),
        ({"region": "XX"}, "region", "ISO 3166-1 alpha-2"),
        ({"region": "usa"}, "region", "at most 2 characters"),
        ({"event_id": "not-a-uuid"}, "event_id", "should match pattern"),
        ({"user_id": ""}, "user_id", "at least 1 character"),
        ({"user_id": "bad id"}, "user_id", "should match pattern"),
        ({"source": "web"}, "source", "'app', 'simulation' or 'import'"),
        ({"context": "radio"}, "context", "'home', 'next'"),
        ({"colour": "red"}, "colour", "is not a field"),
    ],
)
def test_each_bad_field_is_named_with_a_reason(overrides: dict[str, Any], field: str, fragment: str) -> None:
    got = reasons(event(**overrides))
    assert field in got, got
    assert fragment in got[field]


def test_missing_fields_are_each_named() -> None:
    got = reasons({"event_id": "0b9f6a0e-3c1d-4c7e-9a55-2f5d1f0f6a01"})
    assert {"user_id", "track_id", "action", "timestamp", "played_ms", "track_duration_ms", "region"} <= set(got)
    assert all(r == "Field required" for f, r in got.items() if f != "event_id")


def test_played_far_beyond_duration_is_rejected_but_rounding_is_not() -> None:
    assert "played_ms" in reasons(event(played_ms=300_000, track_duration_ms=200_000))["(body)"]
    ListeningEvent.model_validate(event(played_ms=201_000, track_duration_ms=200_000), context={"now_ms": NOW_MS})


def test_timestamp_uses_the_wall_clock_without_context() -> None:
    now = int(time.time() * 1000)
    ListeningEvent.model_validate(event(timestamp=now))
    with pytest.raises(ValidationError):
        ListeningEvent.model_validate(event(timestamp=now + 3 * 3600 * 1000))


def test_batch_bounds_and_per_event_paths() -> None:
    good = event()
    assert "events" in reasons({"events": []}, EventBatch)
    too_many = {"events": [good] * (MAX_BATCH_EVENTS + 1)}
    assert "at most 500" in reasons(too_many, EventBatch)["events"]
    got = reasons({"events": [good, event(action="pause"), event(played_ms=-5)]}, EventBatch)
    assert set(got) == {"events.1.action", "events.2.played_ms"}


def test_track_profile_and_update_contracts() -> None:
    track = Track.model_validate(
        {
            "track_id": "t1",
            "name": "Song",
            "artist_id": "a1",
            "artist_name": "Artist",
            "album": "Album",
            "genres": ["pop", "synth-pop"],
            "release_date": "2026-09-03",
            "duration_ms": 200_000,
            "audio": {
                "danceability": 0.5,
                "energy": 0.7,
                "key": 5,
                "loudness": -6.0,
                "mode": 1,
                "speechiness": 0.05,
                "acousticness": 0.1,
                "instrumentalness": 0,
                "liveness": 0.1,
                "valence": 0.6,
                "tempo": 120.0,
                "time_signature": 4,
            },
        }
    )
    assert track.release_date.year == 2026
    assert track.plays_7d is None
    profile = UserProfile(user_id="u1", region="US", recently_played=["t1", "t2"])
    assert profile.long_term_vector is None
    assert "region" in {e["field"] for e in field_errors(_error(ProfileUpdate, {"region": "ZZ"}))}


def _error(model: Any, data: dict[str, Any]) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    return info.value


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"surface": "home", "k": 10}, "needs user_vector or short_vector"),
        ({"surface": "next", "user_vector": [0.1]}, "needs seed_track_id"),
        ({"surface": "similar"}, "needs seed_track_id"),
        ({"surface": "home", "user_vector": [0.1], "k": 0}, "greater than or equal to 1"),
        ({"surface": "radio"}, "'home', 'next', 'similar' or 'rank'"),
        ({"surface": "rank"}, "needs candidates"),
    ],
)
def test_inference_request_says_what_is_missing(data: dict[str, Any], fragment: str) -> None:
    messages = " ".join(e["reason"] for e in field_errors(_error(InferenceRequest, data)))
    assert fragment in messages


def test_inference_request_accepts_each_surface() -> None:
    assert InferenceRequest(surface="home", short_vector=[0.1, 0.2]).k == 20  # type: ignore[arg-type]
    assert InferenceRequest(surface="next", seed_track_id="t1", exclude=["t2"]).exclude == ["t2"]  # type: ignore[arg-type]
