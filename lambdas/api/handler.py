"""The read API (no `from __future__ import annotations`: Powertools reads the route annotations at run time):
recommendations, next song, similar, tracks, charts, trending, profiles, health, and the API's OpenAPI document
and Swagger UI, which describe POST /v1/events and GET /v1/ops/* too (``encore.events_route``,
``encore.operations``; the events and ops functions answer them).

One function for every read route (shared warm connections and caches, one cold start to pay); the logic is
in ``encore.recommend`` and the stores. Parameters are validated by Powertools from the annotations, which
also give the OpenAPI document; a bad parameter is a 400 naming it.
"""

import time
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import AfterValidator, BaseModel, Field

from encore import events_route, impressions, operations
from encore import observability as obs
from encore.cache import SessionCache
from encore.config import EncoreConfig
from encore.controls import Controls, ControlsQuery, resolve
from encore.deletion import Deleter
from encore.errors import BadRequest, NotFound
from encore.experiment import LiveTestReader
from encore.http import cors_config, read_bodies_strictly, register_error_handlers
from encore.model_client import ModelClient
from encore.models import DeletionResponse, ProfileUpdate, RankRequest, RankResponse, RecommendationResponse, Surface
from encore.observability import logger, metrics, tracer
from encore.openapi import DocumentedResolver, answers
from encore.profiles import ProfileStore
from encore.promotion import ModelRegistry
from encore.recommend import GLOBAL, RESULT_TTL_S, Options, Outcome, ServingDeps, rank, recommend, track_metadata
from encore.regions import ISO_3166_ALPHA2
from encore.stores import ChartStore, TrackStore

config = EncoreConfig.from_env()
deps = ServingDeps(
    config=config,
    profiles=ProfileStore(config.resources.users_table, config.region),
    tracks=TrackStore(config.resources.tracks_table, config.region),
    charts=ChartStore(config.resources.charts_table, config.region),
    cache=SessionCache(config.cache_url, config.session.ttl_seconds),
    model=ModelClient(config.resources.endpoint_name, config.serving.endpoint_timeout_ms, config.region),
    now_ms=lambda: int(time.time() * 1000),
    tests=LiveTestReader(ModelRegistry(config).serving),
)
deleter = Deleter(config, deps.profiles, deps.cache, RESULT_TTL_S)
app = DocumentedResolver(
    enable_validation=True,
    cors=cors_config(config.serving.cors_origins),
    write_auth=config.serving.write_auth,
    described=[events_route.described(), operations.described()],
)
app.configure_openapi(
    title="Encore API",
    version="1.0",
    description="Music recommendations: home, next song, similar tracks, charts, trending, profiles, events.",
)
# Public (no key): a person reads the API here, then enters their key with "Authorize" to try the keyed routes.
app.enable_swagger(path="/v1/docs", title="Encore API", version="1.0", persist_authorization=True)
register_error_handlers(app)
read_bodies_strictly(app)

ID = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$"
UserId = Annotated[str, Path(pattern=ID, description="listener id")]
TrackId = Annotated[str, Path(pattern=ID, description="track id")]
Limit = Annotated[int, Query(ge=1, le=100, description="items to return")]
ExcludePlayed = Annotated[bool, Query(description="leave out the listener's recently played tracks")]
MaxPerArtist = Annotated[int, Query(ge=1, le=100, description="at most this many tracks of one artist")]
Choose = Annotated[ControlsQuery, Query()]


def _in_utc(moment: datetime) -> datetime:
    """A time in UTC (a time without an offset is taken as UTC); one whose offset moves it past year 1 or 9999
    is refused (Python cannot represent it)."""
    try:
        return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    except OverflowError:
        raise ValueError("with its UTC offset this time falls outside the years 1 to 9999") from None


UtcTime = Annotated[datetime, AfterValidator(_in_utc)]


class TrackView(BaseModel):
    track_id: str
    name: str | None = None
    artist_id: str | None = None
    artist_name: str | None = None
    album: str | None = None
    genres: list[str] = Field(default_factory=list)
    duration_ms: int | None = None
    image_url: str | None = None
    explicit: bool | None = None
    release_date: str | None = None


class ProfileView(BaseModel):
    user_id: str
    display_name: str | None = None
    region: str | None = None
    signup_date: str | None = None
    recently_played: list[str] = Field(default_factory=list)
    model_version: str | None = None
    updated_at: int | None = None
    has_long_term_vector: bool = False


def _options(limit: int, exclude_played: bool, max_per_artist: int | None, controls: Controls) -> Options:
    return Options(limit, exclude_played, max_per_artist or config.serving.max_per_artist, controls)


def _report(route: str, outcome: Outcome, response: RecommendationResponse, started: float) -> None:
    # 1 or 0 per answer: the Average is the hit ratio and the fallback rate the alarms watch.
    metrics.add_metric(name=obs.CACHE_HIT, unit=MetricUnit.Count, value=int(outcome.cache_hit))
    metrics.add_metric(name=obs.FALLBACK, unit=MetricUnit.Count, value=int(response.fallback))
    obs.record_degraded(outcome.degraded)
    obs.record_latency(route, (time.perf_counter() - started) * 1000)
    metrics.add_metadata(key="model_version", value=response.model_version or "none")
    if outcome.degraded:
        logger.warning(
            "degraded answer",
            extra={"route": route, "causes": sorted(set(outcome.degraded)), "fallback": response.fallback},
        )


def _recommend(surface: Surface, user_id: str | None, seed: str | None, opts: Options) -> RecommendationResponse:
    started = time.perf_counter()
    response, outcome = recommend(deps, surface, user_id, seed, opts)
    impressions.record(impressions.impression_of(response, user_id, seed, outcome.cache_hit, deps.now_ms()))
    _report(surface.value, outcome, response, started)
    return response


@app.get("/v1/health")
def handle_get_health() -> dict[str, str]:
    return {"status": "ok", "stage": config.stage, "serving_version": deps.serving_version}


@app.get("/v1/users/<user_id>/recommendations", responses=answers(RecommendationResponse, 400))
@tracer.capture_method
def handle_get_recommendations(
    user_id: UserId,
    choose: Choose,
    limit: Limit = 20,
    exclude_played: ExcludePlayed = True,
    max_per_artist: MaxPerArtist | None = None,
) -> RecommendationResponse:
    opts = _options(limit, exclude_played, max_per_artist, resolve(config, choose))
    return _recommend(Surface.HOME, user_id, None, opts)


@app.get("/v1/users/<user_id>/next", responses=answers(RecommendationResponse, 400, 404))
@tracer.capture_method
def handle_get_next(
    user_id: UserId,
    track_id: Annotated[str, Query(pattern=ID, description="the track playing now")],
    choose: Choose,
    limit: Limit = 20,
    exclude_played: ExcludePlayed = True,
    max_per_artist: MaxPerArtist | None = None,
) -> RecommendationResponse:
    opts = _options(limit, exclude_played, max_per_artist, resolve(config, choose))
    return _recommend(Surface.NEXT, user_id, track_id, opts)


@app.get("/v1/tracks/<track_id>/similar", responses=answers(RecommendationResponse, 400, 404))
@tracer.capture_method
def handle_get_similar(
    track_id: TrackId, choose: Choose, limit: Limit = 20, max_per_artist: MaxPerArtist | None = None
) -> RecommendationResponse:
    return _recommend(Surface.SIMILAR, None, track_id, _options(limit, False, max_per_artist, resolve(config, choose)))


@app.post("/v1/users/<user_id>/rank", responses=answers(RankResponse, 400, 413, 415))
@tracer.capture_method
def handle_post_rank(user_id: UserId, body: RankRequest, choose: Choose) -> RankResponse:
    """The supplied tracks (at most 500) ordered for the listener, as home ranks; with the same filters."""
    started = time.perf_counter()
    response, outcome = rank(deps, user_id, body.track_ids, resolve(config, choose, promotions=False))
    impressions.record(impressions.impression_of(response, user_id, None, False, deps.now_ms()))
    _report("rank", outcome, response, started)
    return response


@app.get("/v1/tracks/<track_id>", responses=answers(TrackView, 400, 404))
def handle_get_track(track_id: TrackId) -> TrackView:
    found = track_metadata(deps, [track_id], Outcome())
    if track_id not in found:
        raise NotFound(f"track '{track_id}' is not in the catalog")
    return TrackView.model_validate({**found[track_id], "track_id": track_id})


class ChartEntry(BaseModel):
    rank: int
    track_id: str
    plays: int
    name: str | None = None
    artist_name: str | None = None


class Chart(BaseModel):
    region: str
    window: str
    period: str | None
    items: list[ChartEntry] = Field(default_factory=list)


def _region(code: str) -> str:
    code = code.upper()
    if code != GLOBAL and code not in ISO_3166_ALPHA2:
        raise BadRequest(f"region '{code}' is not an ISO 3166-1 alpha-2 code or GLOBAL")
    return code


def _chart(kind: str, region: str, window: str, period: str, limit: int) -> Chart:
    rows = deps.charts.chart(kind, region, window, period, limit)
    meta = track_metadata(deps, [r["track_id"] for r in rows], Outcome())
    items = [
        ChartEntry(
            rank=int(r["rank"]),
            track_id=r["track_id"],
            plays=int(r["plays"]),
            name=meta.get(r["track_id"], {}).get("name"),
            artist_name=meta.get(r["track_id"], {}).get("artist_name"),
        )
        for r in rows
    ]
    return Chart(region=region, window=window, period=rows[0]["period"] if rows else None, items=items)


@app.get("/v1/charts/<region>", responses=answers(Chart, 400))
def handle_get_chart(
    region: Annotated[str, Path(min_length=2, max_length=6, description="ISO 3166-1 alpha-2 code, or GLOBAL")],
    window: Annotated[Literal["hour", "day"], Query()] = "day",
    at: Annotated[UtcTime | None, Query(description="a time inside the period; default: the latest")] = None,
    limit: Limit = 20,
) -> Chart:
    period = "latest"
    if at is not None:
        period = at.strftime("%Y-%m-%dT%H" if window == "hour" else "%Y-%m-%d")
    return _chart("top", _region(region), window, period, limit)


@app.get("/v1/trending", responses=answers(Chart, 400))
def handle_get_trending(
    region: Annotated[str, Query(min_length=2, max_length=6, description="ISO code or GLOBAL")] = GLOBAL,
    limit: Limit = 20,
) -> Chart:
    code = _region(region)
    chart = _chart("trending", code, "7d", "latest", limit)
    if not chart.items and code != GLOBAL:
        chart = _chart("trending", GLOBAL, "7d", "latest", limit)
    return chart


@app.get("/v1/users/<user_id>", responses=answers(ProfileView, 400, 404))
def handle_get_profile(user_id: UserId) -> ProfileView:
    profile = deps.profiles.get(user_id)
    if profile is None:
        raise NotFound(f"listener '{user_id}' has no profile")
    vector = profile.pop("long_term_vector", None)
    return ProfileView.model_validate({**profile, "has_long_term_vector": vector is not None})


@app.put("/v1/users/<user_id>", responses=answers(ProfileView, 400, 413, 415))
def handle_put_profile(user_id: UserId, body: ProfileUpdate) -> ProfileView:
    deps.profiles.put(user_id, body.model_dump(mode="json"), deps.now_ms())
    return handle_get_profile(user_id)


@app.delete("/v1/users/<user_id>", responses=answers(DeletionResponse, 400, ok=202))
def handle_delete_profile(user_id: UserId) -> Response[str]:
    """Delete the listener: their profile, session, cached results and idempotency records at once; their
    events from the curated zone and features in the next nightly run. Sending it again is safe."""
    answer = deleter.delete(user_id, deps.now_ms())
    logger.info("listener deleted", extra={"profile_found": answer.profile_found})
    return Response(status_code=202, content_type="application/json", body=answer.model_dump_json())


@app.get("/v1/openapi.json", include_in_schema=False)  # the document need not describe itself
def handle_get_openapi() -> Response[str]:
    return Response(status_code=200, content_type="application/json", body=app.get_openapi_json_schema())


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
