"""POST /v1/events: a batch of listening events (Powertools resolver; logic in encore.ingest; the route's OpenAPI
declaration in encore.events_route, which the serving function's document shows)."""

from __future__ import annotations

import gc
import time
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import (
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyPersistenceLayerError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from encore import events_route
from encore.cache import SessionCache
from encore.clients import get_client
from encore.config import EncoreConfig
from encore.deletion import ListenerIndexedPersistence, batch_listeners
from encore.errors import cause_of
from encore.http import cors_config, error_body, json_body, json_response, register_error_handlers
from encore.ingest import IngestDeps, ingest, parse_batch
from encore.observability import EVENTS_ACCEPTED, logger, metrics, record_degraded, tracer
from encore.profiles import ProfileStore
from encore.stores import EventSink, TrackStore

config = EncoreConfig.from_env()
deps = IngestDeps(
    config=config,
    sink=EventSink(config.resources.delivery_stream, config.region),
    tracks=TrackStore(config.resources.tracks_table, config.region),
    profiles=ProfileStore(config.resources.users_table, config.region),
    cache=SessionCache(config.cache_url, config.session.ttl_seconds),
    now_ms=lambda: int(time.time() * 1000),
)


def _replayed(answer: dict[str, Any], record: DataRecord) -> dict[str, Any]:
    return {**answer, "replayed": True}


# A retried request (the same events: same ids, same content) gets the first answer, marked as replayed, instead
# of applying the events again; the same ids with other content are refused. The record is a conditional put.
idempotency = IdempotencyConfig(
    event_key_jmespath="event_ids",
    payload_validation_jmespath="events",
    expires_after_seconds=3600,
    response_hook=_replayed,
)
persistence = ListenerIndexedPersistence(
    table_name=config.resources.idempotency_table, boto3_client=get_client("dynamodb", config.region)
)
app = APIGatewayRestResolver(cors=cors_config(config.serving.cors_origins))
register_error_handlers(app)


@app.exception_handler(IdempotencyAlreadyInProgressError)  # type: ignore[untyped-decorator]
def _in_progress(exc: IdempotencyAlreadyInProgressError) -> Response[str]:
    # A retry that arrives while the first request with the same events is still running: it will finish.
    reason = "the same events are being accepted by another request; retry shortly for its answer"
    return json_response(409, error_body("conflict", reason), {"Retry-After": "1"})


@app.exception_handler(IdempotencyValidationError)  # type: ignore[untyped-decorator]
def _other_content(exc: IdempotencyValidationError) -> Response[str]:
    reason = (
        "these event ids were accepted within the last hour with other content; an event id names one event, so "
        "nothing of this batch was accepted (send new events with new ids)"
    )
    return json_response(409, error_body("conflict", reason))


@idempotent_function(data_keyword_argument="batch", persistence_store=persistence, config=idempotency)
def accept(batch: dict[str, Any]) -> dict[str, Any]:
    return _apply(batch)


def _apply(batch: dict[str, Any]) -> dict[str, Any]:
    batch["result"] = {**ingest(batch["events"], deps), "replayed": False}  # seen even if the record is not saved
    return batch["result"]  # type: ignore[no-any-return]


def accept_without_idempotency(batch: dict[str, Any]) -> dict[str, Any]:
    """The idempotency table is throttled or unreachable: the events still go to the stream (curation removes
    duplicates by event_id); only a retried request's session updates might be applied twice."""
    result = batch.get("result") or _apply(batch)
    return {**result, "degraded": sorted({*result["degraded"], cause_of("idempotency")})}


@events_route.declare(app)
@tracer.capture_method
def handle_post_events() -> Response[str]:
    body = json_body(app.current_event, example='{"events": [ ... ]} with 1 to 500 events')
    events = sorted(parse_batch(body, deps.now_ms()), key=lambda e: e.event_id)  # a retry may send another order
    batch = {"event_ids": [e.event_id for e in events], "events": events}
    batch_listeners.set(frozenset(e.user_id for e in events))  # the record's listener index (encore.deletion)
    try:
        result = accept(batch=batch)
    except IdempotencyPersistenceLayerError as exc:
        logger.warning("idempotency store unavailable", extra={"detail": str(exc)[:300]})
        result = accept_without_idempotency(batch)
    metrics.add_metric(name=EVENTS_ACCEPTED, unit=MetricUnit.Count, value=result["accepted"])
    record_degraded(result["degraded"])
    for dependency in result["degraded"]:
        logger.warning("session update degraded", extra={"dependency": dependency})
    return json_response(202, result)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    idempotency.register_lambda_context(context)
    deps.remaining_ms = context.get_remaining_time_in_millis
    return app.resolve(event, context)


# What the cold start built (modules, the app, its routes) lives as long as the instance: out of the garbage
# collector's walks, a full collection takes about a tenth as long (bench/bench_handlers.py).
gc.freeze()
