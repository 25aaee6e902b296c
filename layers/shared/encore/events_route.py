"""``POST /v1/events``, declared once: the events function answers it, the serving function's OpenAPI document
describes it.

API Gateway sends this route to the events function alone, so the serving function (which serves the API's
document) must not have it among its routes. Both take the declaration here: the events function decorates its
handler with :func:`declare`; :func:`described` is a resolver holding the same declaration on a handler that
never runs, whose signature is the body the events function accepts (``encore.ingest.parse_batch`` validates
the raw body as ``EventBatch``), so the document carries the request body's schema. The serving function's
resolver (``encore.openapi.DocumentedResolver``) merges it into its own document.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.event_handler.api_gateway import BaseRouter
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import BaseModel, ConfigDict, Field

from encore.models import MAX_BATCH_EVENTS, ErrorBody, EventBatch

PATH = "/v1/events"


class EventsAccepted(BaseModel):
    """The 202 answer: every event is in the event stream; what the listeners' state made of them."""

    model_config = ConfigDict(extra="forbid")

    accepted: int = Field(description="events written to the event stream (all of the batch)")
    stream_retries: int = Field(description="retries the stream needed to take them")
    qualifying_plays: int = Field(description="plays long enough to move a listener's session vector")
    sessions_updated: int = Field(description="listeners whose session vector moved")
    unknown_tracks: list[str] = Field(
        description="tracks the catalog does not know (at most 20 named): their events are kept in the stream, "
        "but they enter no session and no recently-played list"
    )
    degraded: list[str] = Field(
        description="state not updated this time (cache_unavailable, tracks_unavailable, profiles_unavailable, "
        "idempotency_unavailable, or time_budget: too little of the function's time left for a slow table); the "
        "events are kept"
    )
    replayed: bool = Field(
        description="true: the same events (ids and content) were accepted by an earlier request, whose answer "
        "this is; nothing was applied again"
    )


def _error(description: str) -> OpenAPIResponse:
    return {"description": description, "content": {"application/json": {"model": ErrorBody}}}


ANSWERS: dict[int, OpenAPIResponse] = {
    202: {
        "description": "accepted: every event is in the event stream",
        "content": {"application/json": {"model": EventsAccepted}},
    },
    400: _error(
        "the body is empty, compressed without Content-Encoding, not UTF-8, not JSON, nested or numbered past "
        "any event, or not a valid batch (an event id twice among them): `errors` names each bad field "
        "(`events.3.played_ms`) with its reason, the first 20 of them; nothing of the batch was accepted"
    ),
    409: _error(
        "the same events are being accepted by another request (retry after Retry-After for its answer), or "
        "these event ids were accepted within the hour with other content"
    ),
    413: _error("the body is over 1 MiB"),
    415: _error("the body is not sent as application/json (UTF-8)"),
    503: _error(
        "the event stream or a table did not take the events after retries; nothing was accepted; "
        "retry after Retry-After seconds"
    ),
}


def declare(router: BaseRouter) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The route on ``router``, with its OpenAPI declaration (the decorator for its handler)."""
    return router.post(
        PATH,
        status_code=202,
        summary="Post a batch of listening events",
        description=(
            f"1 to {MAX_BATCH_EVENTS} events, validated whole: one invalid event rejects the batch. Accepted events "
            "are in the event stream (and the data lake) and have updated their listeners' sessions. A retried "
            "request (the same event ids) gets the first answer again without applying it twice."
        ),
        responses=ANSWERS,
    )


def described() -> APIGatewayRestResolver:
    """A resolver that only describes the route, for another function's OpenAPI document; it answers nothing."""
    resolver = APIGatewayRestResolver()

    @declare(resolver)
    def handle_post_events(
        batch: Annotated[EventBatch, Body(description="the events (validated as the events function does)")],
    ) -> EventsAccepted:
        raise NotImplementedError("documentation only: API Gateway sends POST /v1/events to the events function")

    return resolver
