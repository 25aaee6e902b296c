"""The events path never lets a slow table run the function past its timeout: with too little time left, the
track and profile lookups are skipped (``degraded: ["time"]``) and the events, already in the stream, are kept."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from encore.config import EncoreConfig
from encore.ingest import TABLE_CALL_BUDGET_MS, IngestDeps, update_listeners
from encore.models import ListeningEvent
from encore.stores import PlayedTracks

pytestmark = pytest.mark.unit
NOW = 1_790_000_000_000


class Recorded:
    """Stand-ins for the tables and the cache that record what was asked of them."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def played(self, track_ids: list[str]) -> PlayedTracks:
        self.calls.append("tracks")
        return PlayedTracks(frozenset(track_ids), {})

    def record_plays(self, *args: Any) -> None:
        self.calls.append("profiles")

    def bump_generations(self, users: list[str]) -> None:
        self.calls.append("cache")


def events(n: int) -> list[ListeningEvent]:
    return [
        ListeningEvent.model_validate({"event_id": str(uuid.uuid4()), "user_id": f"u{i}", "track_id": "t1",
                                       "action": "complete", "timestamp": NOW, "played_ms": 1000,
                                       "track_duration_ms": 1000, "region": "US"}, context={"now_ms": NOW})
        for i in range(n)
    ]  # fmt: skip


def deps(recorded: Recorded, left: list[int]) -> IngestDeps:
    return IngestDeps(config=EncoreConfig.for_stage("local"), sink=None, tracks=recorded, profiles=recorded,  # type: ignore[arg-type]
                      cache=recorded, now_ms=lambda: NOW, remaining_ms=lambda: left[0])  # type: ignore[arg-type]  # fmt: skip


def test_with_time_left_every_table_is_asked() -> None:
    recorded = Recorded()
    outcome = update_listeners(events(3), deps(recorded, [9_000]))
    assert recorded.calls == ["cache", "tracks", "profiles", "profiles", "profiles"] and outcome["degraded"] == []


def test_with_too_little_time_left_the_tables_are_skipped_and_it_says_so() -> None:
    recorded = Recorded()
    outcome = update_listeners(events(3), deps(recorded, [TABLE_CALL_BUDGET_MS - 1]))
    assert recorded.calls == ["cache"] and outcome["degraded"] == ["time"]


def test_time_running_out_midway_stops_the_profile_updates() -> None:
    recorded, left = Recorded(), [9_000]
    original = recorded.record_plays

    def slow(*args: Any) -> None:  # the first listener's update took the time
        original(*args)
        left[0] = 1_000

    recorded.record_plays = slow  # type: ignore[method-assign]
    outcome = update_listeners(events(3), deps(recorded, left))
    assert recorded.calls == ["cache", "tracks", "profiles"] and outcome["degraded"] == ["time"]
