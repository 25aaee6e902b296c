"""Every way the write path degrades, with dict-backed stores: the events reach the stream first, and a store
that fails after that degrades the listeners' state (named in ``degraded``) without losing an event. A slow
table never runs the function past its timeout: with too little time left the lookups are skipped."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import pytest

from encore.config import EncoreConfig
from encore.errors import DependencyUnavailable
from encore.ingest import TABLE_CALL_BUDGET_MS, TIME_BUDGET, IngestDeps, ingest
from encore.models import ListeningEvent, TrackInfo
from encore.stores import TrackVectors
from encore_local.memory_stores import Cache, Profiles, Sink, Tracks

pytestmark = pytest.mark.unit
NOW = 1_790_000_000_000


def events(n: int, track: str = "t1") -> list[ListeningEvent]:
    return [
        ListeningEvent.model_validate({"event_id": str(uuid.uuid4()), "user_id": f"u{i}", "track_id": track,
                                       "action": "complete", "timestamp": NOW - 1000 + i, "played_ms": 1000,
                                       "track_duration_ms": 1000, "region": "US"}, context={"now_ms": NOW})
        for i in range(n)
    ]  # fmt: skip


def writing(left_ms: list[int] | None = None, **down: bool) -> IngestDeps:
    """Given: a catalog that knows t1 (with a model vector), listeners with no state yet."""
    left = left_ms or [10**9]
    vectors = {"t1": TrackVectors(np.ones(4), None, "v1")}
    return IngestDeps(
        config=EncoreConfig.for_stage("local"),
        sink=Sink(down=down.get("sink", False)),
        tracks=Tracks({"t1": TrackInfo(track_id="t1")}, vectors, down=down.get("tracks", False)),
        profiles=Profiles(down=down.get("profiles", False)),
        cache=Cache(down=down.get("cache", False)),
        now_ms=lambda: NOW,
        remaining_ms=lambda: left[0],
    )


def state(deps: IngestDeps) -> tuple[Any, Any, Any]:
    return deps.sink.records, deps.profiles.plays, deps.cache.sessions  # type: ignore[attr-defined]


def test_with_everything_up_every_listener_moves() -> None:
    deps = writing()
    answer = ingest(events(3), deps)
    records, plays, sessions = state(deps)
    assert answer["degraded"] == [] and len(records) == 3 and answer["sessions_updated"] == 3
    assert plays == {f"u{i}": ["t1"] for i in range(3)} and set(sessions) == {"u0", "u1", "u2"}


def test_a_stream_that_refuses_the_events_is_a_503_and_nothing_else_is_touched() -> None:
    deps = writing(sink=True)
    with pytest.raises(DependencyUnavailable):
        ingest(events(2), deps)
    _, plays, sessions = state(deps)
    assert plays == {} and sessions == {} and deps.cache.generations == {}  # type: ignore[attr-defined]


def test_cache_down_the_sessions_wait_and_recently_played_moves() -> None:
    deps = writing(cache=True)
    answer = ingest(events(2), deps)
    records, plays, _ = state(deps)
    assert answer["degraded"] == ["cache_unavailable"] and answer["sessions_updated"] == 0
    assert len(records) == 2 and plays == {"u0": ["t1"], "u1": ["t1"]}


def test_tracks_down_recently_played_takes_every_track_and_no_session_moves() -> None:
    deps = writing(tracks=True)
    answer = ingest(events(2, track="t-unknown"), deps)
    _, plays, sessions = state(deps)
    assert answer["degraded"] == ["tracks_unavailable"] and sessions == {}
    assert plays == {"u0": ["t-unknown"], "u1": ["t-unknown"]} and answer["unknown_tracks"] == []


def test_profiles_down_the_sessions_still_move() -> None:
    deps = writing(profiles=True)
    answer = ingest(events(2), deps)
    records, plays, sessions = state(deps)
    assert answer["degraded"] == ["profiles_unavailable"] and len(records) == 2
    assert plays == {} and set(sessions) == {"u0", "u1"}


def test_with_too_little_time_left_the_tables_are_skipped_and_it_says_so() -> None:
    deps = writing([TABLE_CALL_BUDGET_MS - 1])
    answer = ingest(events(3), deps)
    records, plays, _ = state(deps)
    assert answer["degraded"] == [TIME_BUDGET] and len(records) == 3 and plays == {}
    assert deps.cache.generations == {"u0": 1, "u1": 1, "u2": 1}  # type: ignore[attr-defined]


def test_time_running_out_midway_stops_the_profile_updates() -> None:
    left = [9_000]
    deps = writing(left)
    profiles = deps.profiles
    original = profiles.record_plays

    def slow(*args: Any) -> None:  # the first listener's update took the time
        original(*args)
        left[0] = 1_000

    profiles.record_plays = slow  # type: ignore[method-assign]
    answer = ingest(events(3), deps)
    assert answer["degraded"] == [TIME_BUDGET] and list(profiles.plays) == ["u0"]  # type: ignore[attr-defined]
