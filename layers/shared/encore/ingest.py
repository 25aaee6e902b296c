"""Event ingestion: validate a batch whole, make it durable in the event stream, then update listener state.

Order matters: nothing is written unless every event is valid; the listener's session, cached results and
recently-played list are touched only after the stream has accepted the events, and a fault in any of those
degrades the session (reported in the answer and in metrics) without losing an event.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from encore.cache import CacheUnavailable
from encore.config import EncoreConfig
from encore.errors import BadRequest, StoreUnavailable, cause_of
from encore.models import EventBatch, ListeningEvent, field_errors
from encore.scoring import ema_update, is_qualifying_play
from encore.stores import PlayedTracks
from encore.vectors import FloatArray

MAX_UNKNOWN_LISTED = 20  # the answer names this many of the tracks the catalog does not know


# A table call that is throttled takes up to about 3 s through its retries; a request starts one only with this
# much of the function's time left, so that a slow table degrades the answer instead of timing the function out.
TABLE_CALL_BUDGET_MS = 4_500
# The answer's ``degraded`` names: a store's ``StoreUnavailable.cause``, or this when the invocation's time ran low.
TIME_BUDGET = "time_budget"


class Sink(Protocol):
    def put(self, records: Sequence[dict[str, Any]]) -> int: ...


class PlayedReader(Protocol):
    def played(self, track_ids: Sequence[str]) -> PlayedTracks: ...


class PlaysWriter(Protocol):
    def record_plays(self, user_id: str, region: str, newest_first: Sequence[str], bound: int, now_ms: int) -> None: ...


class SessionWriter(Protocol):
    def bump_generations(self, user_ids: Sequence[str]) -> None: ...

    def short_vector(self, user_id: str) -> FloatArray | None: ...

    def set_short_vector(self, user_id: str, vector: FloatArray) -> None: ...


@dataclass
class IngestDeps:
    """What the write path needs; each store raises ``StoreUnavailable`` when it cannot answer."""

    config: EncoreConfig
    sink: Sink
    tracks: PlayedReader
    profiles: PlaysWriter
    cache: SessionWriter
    now_ms: Callable[[], int]
    # The invocation's time left (Lambda's context sets it per request); unbounded where there is no context.
    remaining_ms: Callable[[], int] = lambda: 10**9


def parse_batch(data: dict[str, Any], now_ms: int) -> list[ListeningEvent]:
    """The body (a JSON object, ``encore.http.json_body``) as validated events, or ``BadRequest`` naming the bad
    fields of the bad events."""
    try:
        return EventBatch.model_validate(data, context={"now_ms": now_ms}).events
    except ValidationError as exc:
        errors = field_errors(exc)
        bad = {e["field"].split(".")[1] for e in errors if e["field"].startswith("events.") and e["field"].count(".")}
        summary = f"{len(bad)} of the events are invalid" if bad else "the batch is invalid"
        raise BadRequest(f"{summary}; nothing was accepted", details=errors) from None


def ingest(events: Sequence[ListeningEvent], deps: IngestDeps) -> dict[str, Any]:
    """Send the events to the stream (raises ``DependencyUnavailable`` if it will not take them), then update
    sessions. Returns counts for the 202 answer."""
    retries = deps.sink.put([e.model_dump(mode="json", exclude_none=True) for e in events])
    outcome = update_listeners(events, deps)
    return {"accepted": len(events), "stream_retries": retries, **outcome}


def update_listeners(events: Sequence[ListeningEvent], deps: IngestDeps) -> dict[str, Any]:
    """Move the listeners' session vectors, invalidate their cached answers and put the plays at the front of
    their recently-played lists. Tracks the catalog does not know stay in the stream (the catalog may be behind
    the player, and charts count them) but not in recently played, which they would crowd out."""
    config, degraded = deps.config, set()
    by_user: dict[str, list[ListeningEvent]] = defaultdict(list)
    for event in sorted(events, key=lambda e: e.timestamp):
        by_user[event.user_id].append(event)

    try:  # every cached recommendation of these listeners becomes unreachable
        deps.cache.bump_generations(list(by_user))
    except CacheUnavailable as exc:
        degraded.add(exc.cause)

    played: PlayedTracks | None = None  # unknown: recently played takes every track, as before
    if deps.remaining_ms() < TABLE_CALL_BUDGET_MS:
        degraded.add(TIME_BUDGET)
    else:
        try:
            played = deps.tracks.played([e.track_id for e in events])
        except StoreUnavailable as exc:
            degraded.add(exc.cause)
    vectors = played.vectors if played else {}
    qualifying = [e for e in events if is_qualifying_play(e.action.value, e.played_ms, config.session)]
    qualifying_ids = {e.event_id for e in qualifying}
    sessions_updated = 0
    if qualifying and cause_of("cache") not in degraded:
        for user, user_events in by_user.items():
            plays = [e for e in user_events if e.event_id in qualifying_ids and e.track_id in vectors]
            if not plays:
                continue  # tracks the model has not seen leave the session vector as it was
            try:
                v = deps.cache.short_vector(user)
                for e in plays:
                    cf = vectors[e.track_id].cf
                    if cf is not None and (v is None or v.shape == cf.shape):
                        v = ema_update(v, cf, config.weights)
                if v is not None:
                    deps.cache.set_short_vector(user, v)
                    sessions_updated += 1
            except CacheUnavailable as exc:
                degraded.add(exc.cause)
                break

    for user, user_events in by_user.items():
        newest_first = [e.track_id for e in reversed(user_events) if played is None or e.track_id in played.known]
        if not newest_first:
            continue
        if deps.remaining_ms() < TABLE_CALL_BUDGET_MS:
            degraded.add(TIME_BUDGET)  # the rest would run past the function's timeout: the events are kept, as ever
            break
        try:
            deps.profiles.record_plays(
                user, user_events[-1].region, newest_first, config.session.recently_played_max, deps.now_ms()
            )
        except StoreUnavailable as exc:
            degraded.add(exc.cause)
            break  # the table is throttled or unreachable past retries: the other listeners would wait on it too
    unknown = sorted({e.track_id for e in events} - played.known) if played else []
    return {
        "qualifying_plays": len(qualifying),
        "sessions_updated": sessions_updated,
        "unknown_tracks": unknown[:MAX_UNKNOWN_LISTED],
        "degraded": sorted(degraded),
    }
