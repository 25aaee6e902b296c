"""The read API (no `from __future__ import annotations`: Powertools reads the route annotations at run time):
recommendations, next song, similar, tracks, charts, trending, profiles, health, and the API's OpenAPI document
and Swagger UI, which describe POST /v1/events and GET /v1/ops/* too (``encore.events_route``,
``encore.operations``; the events and ops functions answer them).

One function for every read route (shared warm connections and caches, one cold start to pay). Each route is
one call: the logic is in ``encore.recommend``, ``encore.charts``, ``encore.catalog`` and the stores.
Parameters are validated by Powertools from the annotations, which also give the OpenAPI document; a bad
parameter is a 400 naming it.
"""

import gc
import time
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from encore import charts, events_route, operations
from encore.cache import SessionCache
from encore.catalog import Catalog
from encore.config import EncoreConfig
from encore.controls import ControlsQuery
from encore.deletion import Deleter
from encore.experiment import LiveTestReader
from encore.http import cors_config, read_bodies_strictly, register_error_handlers
from encore.model_client import ModelClient
from encore.models import (
    Chart,
    DeletionResponse,
    ProfileUpdate,
    ProfileView,
    RankRequest,
    RankResponse,
    RecommendationResponse,
    Surface,
    TrackInfo,
    UtcTime,
)
from encore.observability import logger, metrics, tracer
from encore.openapi import DocumentedResolver, answers
from encore.profiles import ProfileStore
from encore.promotion import ModelRegistry
from encore.recommend import RESULT_TTL_S, Options, ServingDeps, serve, serve_rank
from encore.stores import ChartStore, TrackStore

config = EncoreConfig.from_env()
profiles = ProfileStore(config.resources.users_table, config.region)
cache = SessionCache(config.cache_url, config.session.ttl_seconds)
deps = ServingDeps(
    config=config,
    profiles=profiles,
    catalog=Catalog(TrackStore(config.resources.tracks_table, config.region), cache),
    charts=ChartStore(config.resources.charts_table, config.region),
    cache=cache,
    model=ModelClient(config.resources.endpoint_name, config.serving.endpoint_timeout_ms, config.region),
    now_ms=lambda: int(time.time() * 1000),
    tests=LiveTestReader(ModelRegistry(config).serving),
)
deleter = Deleter(config, profiles, cache, RESULT_TTL_S)
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
    return serve(deps, Surface.HOME, user_id, None, Options.of(config, choose, limit, exclude_played, max_per_artist))


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
    opts = Options.of(config, choose, limit, exclude_played, max_per_artist)
    return serve(deps, Surface.NEXT, user_id, track_id, opts)


@app.get("/v1/tracks/<track_id>/similar", responses=answers(RecommendationResponse, 400, 404))
@tracer.capture_method
def handle_get_similar(
    track_id: TrackId, choose: Choose, limit: Limit = 20, max_per_artist: MaxPerArtist | None = None
) -> RecommendationResponse:
    return serve(deps, Surface.SIMILAR, None, track_id, Options.of(config, choose, limit, False, max_per_artist))


@app.post("/v1/users/<user_id>/rank", responses=answers(RankResponse, 400, 413, 415))
@tracer.capture_method
def handle_post_rank(user_id: UserId, body: RankRequest, choose: Choose) -> RankResponse:
    """The supplied tracks (at most 500) ordered for the listener, as home ranks; with the same filters."""
    return serve_rank(deps, user_id, body.track_ids, choose)


@app.get("/v1/tracks/<track_id>", responses=answers(TrackInfo, 400, 404))
def handle_get_track(track_id: TrackId) -> TrackInfo:
    return deps.catalog.track(track_id)


@app.get("/v1/charts/<region>", responses=answers(Chart, 400))
def handle_get_chart(
    region: Annotated[str, Path(min_length=2, max_length=6, description="ISO 3166-1 alpha-2 code, or GLOBAL")],
    window: Annotated[Literal["hour", "day"], Query()] = "day",
    at: Annotated[UtcTime | None, Query(description="a time inside the period; default: the latest")] = None,
    limit: Limit = 20,
) -> Chart:
    return charts.top(deps.charts, deps.catalog, region, window, at, limit)


@app.get("/v1/trending", responses=answers(Chart, 400))
def handle_get_trending(
    region: Annotated[str, Query(min_length=2, max_length=6, description="ISO code or GLOBAL")] = charts.GLOBAL,
    limit: Limit = 20,
) -> Chart:
    return charts.trending(deps.charts, deps.catalog, region, limit)


@app.get("/v1/users/<user_id>", responses=answers(ProfileView, 400, 404))
def handle_get_profile(user_id: UserId) -> ProfileView:
    return profiles.view(user_id)


@app.put("/v1/users/<user_id>", responses=answers(ProfileView, 400, 413, 415))
def handle_put_profile(user_id: UserId, body: ProfileUpdate) -> ProfileView:
    return profiles.update(user_id, body, deps.now_ms())


@app.delete("/v1/users/<user_id>", responses=answers(DeletionResponse, 400, ok=202))
def handle_delete_profile(user_id: UserId) -> Response[str]:
    """Delete the listener: their profile, session, cached results and idempotency records at once; their
    events from the curated zone and features in the next nightly run. Sending it again is safe."""
    answer = deleter.delete(user_id, deps.now_ms())
    return Response(status_code=202, content_type="application/json", body=answer.model_dump_json())


@app.get("/v1/openapi.json", include_in_schema=False)  # the document need not describe itself
def handle_get_openapi() -> Response[str]:
    return Response(status_code=200, content_type="application/json", body=app.get_openapi_json_schema())


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)


# What the cold start built (modules, the app, its routes) lives as long as the instance: out of the garbage
# collector's walks, a full collection takes about a tenth as long (bench/bench_handlers.py).
gc.freeze()
