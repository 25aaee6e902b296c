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
from datetime import UTC, date, datetime
from typing import Any

from cachetools import TTLCache

from encore.cache import CacheUnavailable, SessionCache, track_metadata_key
from encore.cache import result_key as cache_result_key
from encore.config import EncoreConfig
from encore.controls import NO_CONTROLS, Controls
from encore.errors import NotFound
from encore.experiment import CHAMPION, LiveTest, LiveTestReader
from encore.model_client import ModelClient, ModelRejected, ModelUnavailable
from encore.models import (
    InferenceItem,
    InferencePromotion,
    InferenceRequest,
    InferenceWeights,
    RankResponse,
    Reason,
    RecommendationItem,
    RecommendationResponse,
    Surface,
)
from encore.profiles import DEPENDENCY_ERRORS, ProfileStore
from encore.scoring import compose_page
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
    controls: Controls = NO_CONTROLS


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


def _item(r: dict[str, Any], m: dict[str, Any], source: str, reason: Reason) -> RecommendationItem:
    return RecommendationItem(
        track_id=r["track_id"],
        score=float(r["score"]),
        cf=r.get("cf"),
        content=r.get("content"),
        source=source,
        reason=reason,
        name=m.get("name"),
        artist_name=m.get("artist_name"),
        image_url=m.get("image_url"),
    )


def _decorate(
    deps: ServingDeps,
    ranked: list[dict[str, Any]],
    opts: Options,
    outcome: Outcome,
    source: str,
    promoted: list[dict[str, Any]] | None = None,
) -> list[RecommendationItem]:
    """The page: the promotion's places filled from ``promoted``, the rest from ``ranked``, the artist cap over
    all of it (``compose_page``), and each track's metadata."""
    promoted = promoted or []
    both = ranked + promoted
    ids = [r["track_id"] for r in ranked]
    promoted_ids = [r["track_id"] for r in promoted]
    places = opts.controls.promoted_places(opts.limit) if promoted else 0
    if all(r.get("artist_id") for r in both):
        # The model names each track's artist: compose first, then read the metadata of only the tracks returned.
        page = compose_page(ids, promoted_ids, {r["track_id"]: r["artist_id"] for r in both}, opts.max_per_artist,
                            opts.limit, places)  # fmt: skip
        meta = track_metadata(deps, [t for t, _ in page], outcome)
    else:
        meta = track_metadata(deps, list(dict.fromkeys(ids + promoted_ids)), outcome)
        artist_of = {t: m.get("artist_id", t) for t, m in meta.items()}
        page = compose_page(ids, promoted_ids, artist_of, opts.max_per_artist, opts.limit, places)
    by_id = {r["track_id"]: r for r in ranked}
    by_id_promoted = {r["track_id"]: r for r in promoted}
    items = []
    for track_id, is_promoted in page:
        r = by_id_promoted[track_id] if is_promoted else by_id[track_id]
        reason = Reason.PROMOTED if is_promoted else Reason(r.get("reason") or Reason.PERSONALISED)
        items.append(_item(r, meta.get(track_id, {}), source, reason))
    return items


def trending_items(deps: ServingDeps, region: str, limit: int) -> list[dict[str, Any]]:
    """The region's 7-day trending, else the world's (a region with little traffic has no chart yet)."""
    for where in dict.fromkeys([region, GLOBAL]):
        rows = deps.charts.chart("trending", where, "7d", "latest", limit)
        if rows:
            return [{"track_id": r["track_id"], "score": float(r.get("plays", 0))} for r in rows]
    return []


def _today(deps: ServingDeps) -> date:
    return datetime.fromtimestamp(deps.now_ms() / 1000, UTC).date()


def _allowed(
    deps: ServingDeps, ranked: list[dict[str, Any]], meta: dict[str, dict[str, Any]], controls: Controls
) -> list[dict[str, Any]]:
    """The tracks of ``ranked`` the request's filter allows, by their catalog entries ``meta`` (where the model,
    which applies filters itself, did not rank them)."""
    if controls.filter is None:
        return ranked
    today = _today(deps)
    return [r for r in ranked if r["track_id"] in meta and controls.filter.allows(meta[r["track_id"]], today)]


def _fallback(
    deps: ServingDeps, surface: str, region: str, opts: Options, outcome: Outcome, reason: str, exclude: set[str]
) -> RecommendationResponse:
    outcome.degraded.append(reason)
    # A filter leaves out some of the chart: read deeper into it
    depth = min(opts.limit * (10 if opts.controls.filter else 3), 500)
    try:
        ranked = [r for r in trending_items(deps, region, depth) if r["track_id"] not in exclude]
        if opts.controls.filter is not None:
            meta = track_metadata(deps, [r["track_id"] for r in ranked], outcome)
            ranked = _allowed(deps, ranked, meta, opts.controls)
        ranked = [{**r, "reason": Reason.TRENDING} for r in ranked]
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
        filter=opts.controls.applied(),
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
        opts.controls.key,
    )


def _vectors_of(profile: dict[str, Any], test: LiveTest | None) -> str | None:
    """The version whose factor space the listener's vectors are in: the long-term vector's own, else (a session
    vector alone) the champion's, whose track vectors the events path averages."""
    return profile.get("model_version") or (test.champion if test else None)


def _request(deps: ServingDeps, surface: Surface, profile: dict[str, Any], short: Any, test: LiveTest | None,
             **fields: Any) -> InferenceRequest:  # fmt: skip
    """What the endpoint is asked: the listener's state from the profile and the session, and ``fields``."""
    v_long = profile.get("long_term_vector")
    w = deps.config.weights
    return InferenceRequest(
        surface=surface,
        user_vector=v_long.tolist() if v_long is not None else None,
        short_vector=short.tolist() if short is not None else None,
        vectors_of=_vectors_of(profile, test),
        history=profile.get("history", [])[:1000],
        recent=profile.get("recently_played", [])[:100],
        weights=InferenceWeights(
            cf=w.cf, content=w.content, long_term=w.long_term, short_term=w.short_term, ema_keep=w.ema_keep
        ),
        **fields,
    )


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

    controls = opts.controls
    profile = (_profile(deps, user_id, outcome) if user_id else None) or {}
    region = profile.get("region") or GLOBAL
    recent, history = profile.get("recently_played", []), profile.get("history", [])
    # Played is played: the recent plays and the liked tracks of the training window are not recommended again.
    exclude = (set(recent) | set(history) if opts.exclude_played else set()) | set(controls.exclude_tracks)
    if surface is Surface.HOME and profile.get("long_term_vector") is None and short is None:
        reason = "profiles_unavailable" if "profiles_unavailable" in outcome.degraded else "unknown_user"
        return _fallback(deps, surface.value, region, opts, outcome, reason, exclude), outcome

    promotion = None
    if controls.promotion is not None:
        k = min(max(controls.promoted_places(opts.limit) * 3, 10), 500)
        promotion = InferencePromotion(filter=controls.promotion.filter.spec(), k=k)
    request = _request(
        deps,
        surface,
        profile,
        short,
        test,
        seed_track_id=seed_track_id,
        exclude=sorted(exclude)[:5000],
        # Headroom for the artist cap, applied here after the model: a ranker that weighs artist affinity can fill
        # a short list with few artists, so never ask for fewer than CAP_HEADROOM.
        k=min(max(opts.limit * 3, CAP_HEADROOM), 500),
        filter=controls.filter.spec() if controls.filter else None,
        promotion=promotion,
        fresh_share=deps.config.serving.fresh_share,
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

    def mine(items: list[InferenceItem]) -> list[dict[str, Any]]:
        return [i.model_dump() for i in items if i.track_id not in exclude]

    try:
        items = _decorate(deps, mine(answer.items), opts, outcome, "model", mine(answer.promoted))
    except DEPENDENCY_ERRORS:
        return _fallback(deps, surface.value, region, opts, outcome, "tracks_unavailable", exclude), outcome
    response = RecommendationResponse(
        recommendation_id=str(uuid.uuid4()),
        surface=surface.value,
        model_version=answer.model_version,
        variant=answered.variant,
        filter=controls.applied(),
        promotion=controls.promotion_name,
        items=items,
    )
    if generation is not None:
        key = result_key(answer.model_version, surface, user_id, seed_track_id, generation, opts)
        _cache_set(deps, key, response.model_dump(mode="json"), outcome)
    return response, outcome


def rank(deps: ServingDeps, user_id: str, track_ids: list[str], controls: Controls) -> tuple[RankResponse, Outcome]:
    """``track_ids`` ordered for the listener as home ranks: those the filter allows (tracks to exclude are
    filtered too), the ids the catalog lacks named. Without the model, the list as given, filtered by the
    catalog entries."""
    outcome = Outcome()
    test, read = deps.tests.current()
    if not read:
        outcome.degraded.append("serving_record_unavailable")
    variant = test.variant_of(user_id) if test else None
    _, short = _session(deps, user_id, outcome)
    profile = _profile(deps, user_id, outcome) or {}
    spec = controls.filter.spec() if controls.filter else None
    request = _request(deps, Surface.RANK, profile, short, test, candidates=track_ids, k=len(track_ids),
                       exclude=list(controls.exclude_tracks), filter=spec)  # fmt: skip
    base = {"recommendation_id": str(uuid.uuid4()), "surface": Surface.RANK.value, "filter": controls.applied()}
    try:
        answered = deps.model.invoke(request, variant)
    except ModelUnavailable as exc:
        return _as_given(deps, track_ids, controls, outcome, exc.cause, base), outcome
    except ModelRejected:
        return _as_given(deps, track_ids, controls, outcome, "model_rejected", base), outcome
    answer = answered.response
    try:
        meta = track_metadata(deps, [i.track_id for i in answer.items], outcome)
    except DEPENDENCY_ERRORS:
        outcome.degraded.append("tracks_unavailable")
        meta = {}
    items = [_item(i.model_dump(), meta.get(i.track_id, {}), "model", i.reason) for i in answer.items]
    response = RankResponse(**base, model_version=answer.model_version, variant=answered.variant, items=items,
                            unknown=answer.unknown, filtered=answer.filtered)  # fmt: skip
    return response, outcome


def _as_given(deps: ServingDeps, track_ids: list[str], controls: Controls, outcome: Outcome, cause: str,
              base: dict[str, Any]) -> RankResponse:  # fmt: skip
    """The rank route's fallback: the supplied order, less what the catalog lacks and what the filter leaves out
    (nothing at all when the catalog cannot be read and a filter is set: it could not be honoured)."""
    outcome.degraded.append(cause)
    try:
        meta = track_metadata(deps, track_ids, outcome)
        known = [{"track_id": t, "score": 0.0} for t in track_ids if t in meta]
        allowed = _allowed(deps, [r for r in known if r["track_id"] not in controls.exclude_tracks], meta, controls)
    except DEPENDENCY_ERRORS:
        outcome.degraded.append("tracks_unavailable")
        meta, known = {}, [{"track_id": t, "score": 0.0} for t in track_ids]
        allowed = [] if controls.filter or controls.exclude_tracks else known
    kept = {r["track_id"] for r in allowed}
    items = [_item(r, meta.get(r["track_id"], {}), "as_given", Reason.SUPPLIED) for r in allowed]
    return RankResponse(**base, model_version=None, fallback=True, fallback_reason=cause, items=items,
                        unknown=[t for t in track_ids if meta and t not in meta],
                        filtered=[r["track_id"] for r in known if r["track_id"] not in kept])  # fmt: skip
