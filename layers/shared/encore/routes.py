"""The API's routes: one table for the CDK app (API Gateway resources and authorizers), the twin's front door and
the OpenAPI document (each operation's security), and the CORS rules API Gateway applies to them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Route:
    path: str  # API Gateway resource template, e.g. "/v1/users/{user_id}"
    methods: tuple[str, ...]
    function: str  # the Lambda folder under lambdas/
    api_key: bool = True  # the key identifies, meters and throttles a client (usage plan); it is not authorization
    # A listener's own data (events, profile, personal recommendations): where the stage sets
    # serving.write_auth = "cognito", these also need a Cognito user-pool JWT.
    listener: bool = False


ROUTES: tuple[Route, ...] = (
    Route("/v1/events", ("POST",), "events", listener=True),
    Route("/v1/users/{user_id}", ("GET", "PUT", "DELETE"), "api", listener=True),
    Route("/v1/users/{user_id}/recommendations", ("GET",), "api", listener=True),
    Route("/v1/users/{user_id}/next", ("GET",), "api", listener=True),
    Route("/v1/users/{user_id}/rank", ("POST",), "api", listener=True),
    Route("/v1/tracks/{track_id}", ("GET",), "api"),
    Route("/v1/tracks/{track_id}/similar", ("GET",), "api"),
    Route("/v1/charts/{region}", ("GET",), "api"),
    Route("/v1/trending", ("GET",), "api"),
    Route("/v1/ops/models", ("GET",), "ops"),
    Route("/v1/ops/models/{version}", ("GET",), "ops"),
    Route("/v1/ops/executions", ("GET",), "ops"),
    Route("/v1/openapi.json", ("GET",), "api", api_key=False),
    Route("/v1/docs", ("GET",), "api", api_key=False),
    Route("/v1/health", ("GET",), "api", api_key=False),
)
ROUTES_BY_PATH: dict[str, Route] = {r.path: r for r in ROUTES}

# What browsers may send on a cross-origin call (the preflight's answer), for API Gateway and the twin alike.
CORS_ALLOW_HEADERS = ("Content-Type", "X-Api-Key", "Authorization", "X-Correlation-Id")
CORS_ALLOW_METHODS = ("GET", "POST", "PUT", "DELETE", "OPTIONS")


def allowed_origin(origins: Sequence[str], request_origin: str | None) -> str | None:
    """The ``Access-Control-Allow-Origin`` of an answer to ``request_origin``: ``*`` when every origin is allowed,
    the request's own origin when it is one of ``origins``, otherwise none (the browser then refuses the answer)."""
    if "*" in origins:
        return "*"
    if request_origin is not None and request_origin in origins:
        return request_origin
    return None
