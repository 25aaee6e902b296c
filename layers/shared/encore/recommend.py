"""The recommendation path: result cache -> profile and session -> model -> metadata -> response.

Degrade, never fail: an unknown listener gets their region's trending; a model that errs or is slow gives
trending with ``fallback: true``; a cache that cannot be reached is skipped; a throttled table is retried by
the client's bounded retries and then falls back. Every degradation is recorded on the ``Outcome`` so the
handler counts it and logs it once with the correlation id.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cachetools import TTLCache

from encore.cache import CacheUnavailable, SessionCache, track_metadata_key
from encore.cache import result_key as cache_result_key
from encore.config import EncoreConfig
from encore.errors import NotFound
from encore.experiment import CHAMPION, LiveTest, LiveTestReader
from encore.model_client import ModelClient, ModelRejected, ModelUnavailable
from encore.models import InferenceRequest, InferenceWeights, RecommendationItem, RecommendationResponse, Surface
from encore.profiles import DEPENDENCY_ERRORS, ProfileStore
from encore.scoring import cap_per_artist
from encore.stores import ChartStore, TrackStore

GLOBAL = "GLOBAL"
RESULT_TTL_S = 300
METADATA_TTL_S = 3600
# Each Lambda instance keeps the metadata it has read for a few minutes: most answers then need no cache call
# for it at all, and a catalog change shows within LOCAL_METADATA_TTL_S.
LOCAL_METADATA_TTL_S = 300
LOCAL_METADATA_ITEMS = 50_000
CAP_HEADROOM = 100


@dataclass
class ServingDeps:
    config: EncoreConfig
    profiles: ProfileStore
    tracks: TrackStore
    charts: ChartStore
    cache: SessionCache
    model: ModelClient
    now_ms: Callable[[], int]
    tests: LiveTestReader
    # The version the endpoint last answered with: result keys carry it, so a deploy retires cached results.
    serving_version: str = "none"
    local_metadata: TTLCache[str, dict[str, Any]] = field(
        default_factory=lambda: TTLCache(LOCAL_METADATA_ITEMS, LOCAL_METADATA_TTL_S)
    )
    local_lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class Outcome:
    """What happened on the way: cache hit, degradations by cause."""

    cache_hit: bool = False
    degraded: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Options:
    limit: int
    exclude_played: bool
    max_per_artist: int


def _cache_get(deps: ServingDeps, key: str, outcome: Outcome) -> dict[str, Any] | None:
    try:
        raw = deps.cache.get(key)
    except CacheUnavailable:
        outcome.degraded.append("cache_unavailable")
        return None
    return json.loads(raw) if raw else None


def _cache_set(deps: ServingDeps, key: str, value: dict[str, Any], outcome: Outcome) -> None:
    if "cache_unavailable" in outcome.degraded:
        return
    try:
        deps.cache.set(key, json.dumps(value).encode(), RESULT_TTL_S)
    except CacheUnavailable:
        outcome.degraded.append("cache_unavailable")


def track_metadata(deps: ServingDeps, track_ids: list[str], outcome: Outcome) -> dict[str, dict[str, Any]]:
    """Metadata of tracks: this instance's memory, then the shared cache (an hour), then the tracks table."""
    with deps.local_lock:
        found = {t: deps.local_metadata[t] for t in track_ids if t in deps.local_metadata}
    shared = [t for t in track_ids if t not in found]
    if shared:
        try:
            for t, raw in zip(shared, deps.cache.get_many([track_metadata_key(t) for t in shared]), strict=True):
                if raw:
                    found[t] = json.loads(raw)
        except CacheUnavailable:
            outcome.degraded.append("cache_unavailable")
    missing = [t for t in track_ids if t not in found]
    if missing:
        fetched = deps.tracks.metadata(missing)
        found.update(fetched)
        if fetched and "cache_unavailable" not in outcome.degraded:
            try:
                values = {track_metadata_key(t): json.dumps(m).encode() for t, m in fetched.items()}
                deps.cache.set_many(values, METADATA_TTL_S)
            except CacheUnavailable:
                outcome.degraded.append("cache_unavailable")
    with deps.local_lock:
        deps.local_metadata.update({t: found[t] for t in shared if t in found})
    return found


def _decorate(
    deps: ServingDeps, ranked: list[dict[str, Any]], opts: Options, outcome: Outcome, source: str
) -> list[RecommendationItem]:
    ids = [r["track_id"] for r in ranked]
    if all(r.get("artist_id") for r in ranked):
        # The model names each track's artist: cap first, then read the metadata of only the tracks returned.
        kept = set(
            cap_per_artist(ids, {r["track_id"]: r["artist_id"] for r in ranked}, opts.max_per_artist, opts.limit)
        )
        meta = track_metadata(deps, [t for t in ids if t in kept], outcome)
    else:
        meta = track_metadata(deps, ids, outcome)
        artist_of = {t: m.get("artist_id", t) for t, m in meta.items()}
        kept = set(cap_per_artist(ids, artist_of, opts.max_per_artist, opts.limit))
    items = []
    for r in ranked:
        if r["track_id"] not in kept:
            continue
        m = meta.get(r["track_id"], {})
        items.append(
            RecommendationItem(
                track_id=r["track_id"],
                score=float(r["score"]),
                cf=r.get("cf"),
                content=r.get("content"),
                source=source,
                name=m.get("name"),
                artist_name=m.get("artist_name"),
                image_url=m.get("image_url"),
            )
        )
    return items


def trending_items(deps: ServingDeps, region: str, limit: int) -> list[dict[str, Any]]:
    """The region's 7-day trending, else the world's (a region with little traffic has no chart yet)."""
    for where in dict.fromkeys([region, GLOBAL]):
        rows = deps.charts.chart("trending", where, "7d", "latest", limit)
        if rows:
            return [{"track_id": r["track_id"], "score": float(r.get("plays", 0))} for r in rows]
    return []


def _fallback(
    deps: ServingDeps, surface: str, region: str, opts: Options, outcome: Outcome, reason: str, exclude: set[str]
) -> RecommendationResponse:
    outcome.degraded.append(reason)
    try:
        ranked = [r for r in trending_items(deps, region, min(opts.limit * 3, 500)) if r["track_id"] not in exclude]
        items = _decorate(deps, ranked, opts, outcome, "trending")
    except DEPENDENCY_ERRORS:
        outcome.degraded.append("charts_unavailable")
        items = []
    return RecommendationResponse(
        recommendation_id=str(uuid.uuid4()),
        surface=surface,
        model_version=None,
        fallback=True,
        fallback_reason=reason,
        items=items,
    )


def _profile(deps: ServingDeps, user_id: str, outcome: Outcome) -> dict[str, Any] | None:
    try:
        return deps.profiles.get(user_id)
    except DEPENDENCY_ERRORS:
        outcome.degraded.append("profiles_unavailable")
        return None


def _session(deps: ServingDeps, user_id: str, outcome: Outcome) -> tuple[int | None, Any]:
    """The listener's generation and short-term vector, in one round trip (``None``s when the cache is down)."""
    try:
        return deps.cache.session_state(user_id)
    except CacheUnavailable:
        outcome.degraded.append("cache_unavailable")
        return None, None


def result_key(
    version: str, surface: Surface, user_id: str | None, seed: str | None, generation: int, opts: Options
) -> str:
    """Model version and the listener's generation are in the key: a deploy or a new event retires old results."""
    return cache_result_key(
        version,
        surface.value,
        user_id or "-",
        seed or "-",
        generation,
        opts.limit,
        int(opts.exclude_played),
        opts.max_per_artist,
    )


def _vectors_of(profile: dict[str, Any], test: LiveTest | None) -> str | None:
    """The version whose factor space the listener's vectors are in: the long-term vector's own, else (a session
    vector alone) the champion's, whose track vectors the events path averages."""
    return profile.get("model_version") or (test.champion if test else None)


def recommend(
    deps: ServingDeps, surface: Surface, user_id: str | None, seed_track_id: str | None, opts: Options
) -> tuple[RecommendationResponse, Outcome]:
    """Home (``user_id``), next song (``user_id`` + ``seed_track_id``) or similar (``seed_track_id``)."""
    outcome = Outcome()
    if seed_track_id is not None:
        try:
            known = track_metadata(deps, [seed_track_id], outcome)
        except DEPENDENCY_ERRORS:
            known = {seed_track_id: {}}  # cannot tell: let the model decide
            outcome.degraded.append("tracks_unavailable")
        if seed_track_id not in known:
            raise NotFound(f"track '{seed_track_id}' is not in the catalog")

    test, read = deps.tests.current()
    if not read:
        outcome.degraded.append("serving_record_unavailable")
    # In an online test each listener asks their variant's model; otherwise SageMaker routes (one variant).
    variant = test.variant_of(user_id) if test else None
    version = test.version_of(variant) if test and variant else deps.serving_version
    generation, short = _session(deps, user_id, outcome) if user_id else (0, None)
    if generation is not None:
        cached = _cache_get(deps, result_key(version, surface, user_id, seed_track_id, generation, opts), outcome)
        if cached is not None:
            outcome.cache_hit = True
            cached["recommendation_id"] = str(uuid.uuid4())  # each answer is attributed on its own
            return RecommendationResponse.model_validate(cached), outcome

    profile = (_profile(deps, user_id, outcome) if user_id else None) or {}
    region = profile.get("region") or GLOBAL
    recent, history = profile.get("recently_played", []), profile.get("history", [])
    # Played is played: the recent plays and the liked tracks of the training window are not recommended again.
    exclude = set(recent) | set(history) if opts.exclude_played else set()
    v_long = profile.get("long_term_vector")
    if surface is Surface.HOME and v_long is None and short is None:
        reason = "profiles_unavailable" if "profiles_unavailable" in outcome.degraded else "unknown_user"
        return _fallback(deps, surface.value, region, opts, outcome, reason, exclude), outcome

    w = deps.config.weights
    request = InferenceRequest(
        surface=surface,
        user_vector=v_long.tolist() if v_long is not None else None,
        short_vector=short.tolist() if short is not None else None,
        vectors_of=_vectors_of(profile, test),
        seed_track_id=seed_track_id,
        exclude=sorted(exclude)[:5000],
        history=history[:1000],
        recent=recent[:100],
        # Headroom for the artist cap, applied here after the model: a ranker that weighs artist affinity can fill
        # a short list with few artists, so never ask for fewer than CAP_HEADROOM.
        k=min(max(opts.limit * 3, CAP_HEADROOM), 500),
        weights=InferenceWeights(
            cf=w.cf, content=w.content, long_term=w.long_term, short_term=w.short_term, ema_keep=w.ema_keep
        ),
    )
    try:
        answered = deps.model.invoke(request, variant)
    except ModelUnavailable as exc:
        return _fallback(deps, surface.value, region, opts, outcome, exc.cause, exclude), outcome
    except ModelRejected:
        return _fallback(deps, surface.value, region, opts, outcome, "model_rejected", exclude), outcome
    answer = answered.response
    if test is None or answered.variant == CHAMPION:
        deps.serving_version = answer.model_version
    ranked = [i.model_dump() for i in answer.items if i.track_id not in exclude]
    try:
        items = _decorate(deps, ranked, opts, outcome, "model")
    except DEPENDENCY_ERRORS:
        return _fallback(deps, surface.value, region, opts, outcome, "tracks_unavailable", exclude), outcome
    response = RecommendationResponse(
        recommendation_id=str(uuid.uuid4()),
        surface=surface.value,
        model_version=answer.model_version,
        variant=answered.variant,
        items=items,
    )
    if generation is not None:
        key = result_key(answer.model_version, surface, user_id, seed_track_id, generation, opts)
        _cache_set(deps, key, response.model_dump(mode="json"), outcome)
    return response, outcome
