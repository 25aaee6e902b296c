"""The recommendation path: result cache -> profile and session -> model -> metadata -> response.

Degrade, never fail: an unknown listener gets their region's trending; a model that errs or is slow gives
trending with ``fallback: true``; a cache that cannot be reached is skipped; a throttled table is retried by
the client's bounded retries and then falls back. Every degradation is recorded on the ``Outcome`` so the
handler counts it and logs it once with the correlation id.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Protocol

from encore import impressions
from encore import observability as obs
from encore.cache import CacheUnavailable
from encore.cache import result_key as cache_result_key
from encore.catalog import Catalog
from encore.charts import GLOBAL, ChartReader, trending_rows
from encore.config import EncoreConfig
from encore.controls import NO_CONTROLS, Controls, ControlsQuery, resolve
from encore.errors import NotFound, StoreUnavailable, cause_of
from encore.experiment import CHAMPION, LiveTest
from encore.model_client import Answer, ModelRejected, ModelUnavailable
from encore.models import (
    InferenceItem,
    InferencePromotion,
    InferenceRequest,
    InferenceWeights,
    RankResponse,
    Reason,
    RecommendationItem,
    RecommendationResponse,
    StoredProfile,
    Surface,
    TrackInfo,
)
from encore.scoring import compose_page
from encore.vectors import FloatArray

RESULT_TTL_S = 300
CAP_HEADROOM = 100


class ProfileReader(Protocol):
    def get(self, user_id: str) -> StoredProfile | None: ...


class ResultCache(Protocol):
    def get(self, key: str) -> bytes | None: ...

    def set(self, key: str, value: bytes, ttl_seconds: int) -> None: ...

    def session_state(self, user_id: str) -> tuple[int, FloatArray | None]: ...


class Model(Protocol):
    def invoke(self, request: InferenceRequest, variant: str | None = None) -> Answer: ...


class LiveTests(Protocol):
    def current(self) -> tuple[LiveTest | None, bool]: ...


@dataclass
class ServingDeps:
    """What the read path needs; each store raises ``StoreUnavailable`` (the cache ``CacheUnavailable``, one of
    them) when it cannot answer."""

    config: EncoreConfig
    profiles: ProfileReader
    catalog: Catalog
    charts: ChartReader
    cache: ResultCache
    model: Model
    now_ms: Callable[[], int]
    tests: LiveTests
    # The version the endpoint last answered with: result keys carry it, so a deploy retires cached results.
    serving_version: str = "none"


@dataclass
class Outcome:
    """What happened on the way: cache hit, degradations by cause (``StoreUnavailable.cause``, a model cause,
    ``unknown_user``, ``serving_record_unavailable``)."""

    cache_hit: bool = False
    degraded: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Options:
    limit: int
    exclude_played: bool
    max_per_artist: int
    controls: Controls = NO_CONTROLS

    @classmethod
    def of(cls, config: EncoreConfig, query: ControlsQuery, limit: int, exclude_played: bool,
           max_per_artist: int | None) -> Options:  # fmt: skip
        """A request's options: the stage's artist cap unless it sets one; its controls resolved."""
        return cls(limit, exclude_played, max_per_artist or config.serving.max_per_artist, resolve(config, query))


def _cache_get(deps: ServingDeps, key: str, outcome: Outcome) -> RecommendationResponse | None:
    try:
        raw = deps.cache.get(key)
    except CacheUnavailable as exc:
        outcome.degraded.append(exc.cause)
        return None
    return RecommendationResponse.model_validate_json(raw) if raw else None


def _cache_set(deps: ServingDeps, key: str, response: RecommendationResponse, outcome: Outcome) -> None:
    if cause_of("cache") in outcome.degraded:
        return
    try:
        deps.cache.set(key, response.model_dump_json().encode(), RESULT_TTL_S)
    except CacheUnavailable as exc:
        outcome.degraded.append(exc.cause)


def _item(r: dict[str, Any], m: TrackInfo | None, source: str, reason: Reason) -> RecommendationItem:
    return RecommendationItem(
        track_id=r["track_id"],
        score=float(r["score"]),
        cf=r.get("cf"),
        content=r.get("content"),
        source=source,
        reason=reason,
        name=m.name if m else None,
        artist_name=m.artist_name if m else None,
        image_url=m.image_url if m else None,
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
        meta = deps.catalog.metadata([t for t, _ in page], outcome.degraded)
    else:
        meta = deps.catalog.metadata(list(dict.fromkeys(ids + promoted_ids)), outcome.degraded)
        artist_of = {t: m.artist_id or t for t, m in meta.items()}
        page = compose_page(ids, promoted_ids, artist_of, opts.max_per_artist, opts.limit, places)
    by_id = {r["track_id"]: r for r in ranked}
    by_id_promoted = {r["track_id"]: r for r in promoted}
    items = []
    for track_id, is_promoted in page:
        r = by_id_promoted[track_id] if is_promoted else by_id[track_id]
        reason = Reason.PROMOTED if is_promoted else Reason(r.get("reason") or Reason.PERSONALISED)
        items.append(_item(r, meta.get(track_id), source, reason))
    return items


def _today(deps: ServingDeps) -> date:
    return datetime.fromtimestamp(deps.now_ms() / 1000, UTC).date()


def _allowed(
    deps: ServingDeps, ranked: list[dict[str, Any]], meta: dict[str, TrackInfo], controls: Controls
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
        _, rows = trending_rows(deps.charts, region, depth)
        ranked: list[dict[str, Any]] = [{"track_id": r.track_id, "score": float(r.plays), "reason": Reason.TRENDING}
                                        for r in rows if r.track_id not in exclude]  # fmt: skip
        if opts.controls.filter is not None:
            meta = deps.catalog.metadata([r["track_id"] for r in ranked], outcome.degraded)
            ranked = _allowed(deps, ranked, meta, opts.controls)
        items = _decorate(deps, ranked, opts, outcome, "trending")
    except StoreUnavailable as exc:
        outcome.degraded.append(exc.cause)
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


def _profile(deps: ServingDeps, user_id: str, outcome: Outcome) -> StoredProfile:
    """The listener's profile; an empty one for a listener the table lacks or cannot give."""
    try:
        return deps.profiles.get(user_id) or StoredProfile(user_id)
    except StoreUnavailable as exc:
        outcome.degraded.append(exc.cause)
        return StoredProfile(user_id)


def _session(deps: ServingDeps, user_id: str, outcome: Outcome) -> tuple[int | None, FloatArray | None]:
    """The listener's generation and short-term vector, in one round trip (``None``s when the cache is down)."""
    try:
        return deps.cache.session_state(user_id)
    except CacheUnavailable as exc:
        outcome.degraded.append(exc.cause)
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


def _vectors_of(profile: StoredProfile, test: LiveTest | None) -> str | None:
    """The version whose factor space the listener's vectors are in: the long-term vector's own, else (a session
    vector alone) the champion's, whose track vectors the events path averages."""
    return profile.model_version or (test.champion if test else None)


def _request(deps: ServingDeps, surface: Surface, profile: StoredProfile, short: FloatArray | None,
             test: LiveTest | None,
             **fields: Any) -> InferenceRequest:  # fmt: skip
    """What the endpoint is asked: the listener's state from the profile and the session, and ``fields``."""
    v_long = profile.long_term_vector
    w = deps.config.weights
    return InferenceRequest(
        surface=surface,
        user_vector=v_long.tolist() if v_long is not None else None,
        short_vector=short.tolist() if short is not None else None,
        vectors_of=_vectors_of(profile, test),
        history=list(profile.history[:1000]),
        recent=list(profile.recently_played[:100]),
        weights=InferenceWeights.model_validate(w.model_dump()),
        **fields,
    )


def recommend(
    deps: ServingDeps, surface: Surface, user_id: str | None, seed_track_id: str | None, opts: Options
) -> tuple[RecommendationResponse, Outcome]:
    """Home (``user_id``), next song (``user_id`` + ``seed_track_id``) or similar (``seed_track_id``)."""
    outcome = Outcome()
    if seed_track_id is not None and not deps.catalog.known(seed_track_id, outcome.degraded):
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
            # each answer is attributed on its own
            return cached.model_copy(update={"recommendation_id": str(uuid.uuid4())}), outcome

    controls = opts.controls
    profile = _profile(deps, user_id, outcome) if user_id else StoredProfile("-")
    region = profile.region or GLOBAL
    # Played is played: the recent plays and the liked tracks of the training window are not recommended again.
    played = set(profile.recently_played) | set(profile.history) if opts.exclude_played else set()
    exclude = played | set(controls.exclude_tracks)
    if surface is Surface.HOME and profile.long_term_vector is None and short is None:
        down = cause_of("profiles")
        reason = down if down in outcome.degraded else "unknown_user"
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
        # by hand: model_dump() of a hundred items is a tenth of the handler's time (bench/bench_handlers.py)
        return [{"track_id": i.track_id, "artist_id": i.artist_id, "score": i.score, "cf": i.cf,
                 "content": i.content, "reason": i.reason} for i in items if i.track_id not in exclude]  # fmt: skip

    try:
        items = _decorate(deps, mine(answer.items), opts, outcome, "model", mine(answer.promoted))
    except StoreUnavailable as exc:
        return _fallback(deps, surface.value, region, opts, outcome, exc.cause, exclude), outcome
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
        _cache_set(deps, key, response, outcome)
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
    profile = _profile(deps, user_id, outcome)
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
        meta = deps.catalog.metadata([i.track_id for i in answer.items], outcome.degraded)
    except StoreUnavailable as exc:
        outcome.degraded.append(exc.cause)
        meta = {}
    items = [_item(i.model_dump(), meta.get(i.track_id), "model", i.reason) for i in answer.items]
    response = RankResponse(**base, model_version=answer.model_version, variant=answered.variant, items=items,
                            unknown=answer.unknown, filtered=answer.filtered)  # fmt: skip
    return response, outcome


def _as_given(deps: ServingDeps, track_ids: list[str], controls: Controls, outcome: Outcome, cause: str,
              base: dict[str, Any]) -> RankResponse:  # fmt: skip
    """The rank route's fallback: the supplied order, less what the catalog lacks and what the filter leaves out
    (nothing at all when the catalog cannot be read and a filter is set: it could not be honoured)."""
    outcome.degraded.append(cause)
    try:
        meta = deps.catalog.metadata(track_ids, outcome.degraded)
        known = [{"track_id": t, "score": 0.0} for t in track_ids if t in meta]
        allowed = _allowed(deps, [r for r in known if r["track_id"] not in controls.exclude_tracks], meta, controls)
    except StoreUnavailable as exc:
        outcome.degraded.append(exc.cause)
        meta, known = {}, [{"track_id": t, "score": 0.0} for t in track_ids]
        allowed = [] if controls.filter or controls.exclude_tracks else known
    kept = {r["track_id"] for r in allowed}
    items = [_item(r, meta.get(r["track_id"]), "as_given", Reason.SUPPLIED) for r in allowed]
    return RankResponse(**base, model_version=None, fallback=True, fallback_reason=cause, items=items,
                        unknown=[t for t in track_ids if meta and t not in meta],
                        filtered=[r["track_id"] for r in known if r["track_id"] not in kept])  # fmt: skip


def serve(deps: ServingDeps, surface: Surface, user_id: str | None, seed_track_id: str | None,
          opts: Options) -> RecommendationResponse:  # fmt: skip
    """A recommendation route's answer: ``recommend``, with its impression logged and its metrics emitted."""
    started = time.perf_counter()
    response, outcome = recommend(deps, surface, user_id, seed_track_id, opts)
    impressions.record(impressions.impression_of(response, user_id, seed_track_id, outcome.cache_hit, deps.now_ms()))
    obs.report_answer(surface.value, outcome.cache_hit, response, outcome.degraded, started)
    return response


def serve_rank(deps: ServingDeps, user_id: str, track_ids: list[str], query: ControlsQuery) -> RankResponse:
    """``POST /v1/users/{user_id}/rank``'s answer: ``rank`` with the query's filters (promotions do not apply to
    a list the app chose), its impression logged and its metrics emitted."""
    started = time.perf_counter()
    response, outcome = rank(deps, user_id, track_ids, resolve(deps.config, query, promotions=False))
    impressions.record(impressions.impression_of(response, user_id, None, False, deps.now_ms()))
    obs.report_answer(Surface.RANK.value, False, response, outcome.degraded, started)
    return response
