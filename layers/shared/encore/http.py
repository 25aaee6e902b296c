"""HTTP for the API handlers: the one place domain errors become status codes, JSON responses, and CORS."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, CORSConfig, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError

from encore.errors import DependencyUnavailable, EncoreError
from encore.observability import logger
from encore.profiles import DEPENDENCY_ERRORS
from encore.routes import CORS_ALLOW_HEADERS

JSON = "application/json"


def cors_config(origins: tuple[str, ...]) -> CORSConfig | None:
    """CORS for every answer a function gives (``serving.cors_origins``; API Gateway answers the preflights).

    With several origins Powertools echoes the request's ``Origin`` when it is one of them and adds nothing
    otherwise; with ``*`` it answers ``*``. A request without ``Origin`` (not a browser's) gets no CORS headers.
    """
    if not origins:
        return None
    return CORSConfig(
        allow_origin=origins[0],
        extra_origins=list(origins[1:]),
        allow_headers=list(CORS_ALLOW_HEADERS),
        expose_headers=["Retry-After"],  # so a page can read how long to wait after a 503
    )


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response[str]:
    return Response(status_code=status, content_type=JSON, body=json.dumps(body, default=str), headers=headers)


def register_error_handlers(app: APIGatewayRestResolver) -> None:
    @app.exception_handler(EncoreError)  # type: ignore[untyped-decorator]
    def _domain(exc: EncoreError) -> Response[str]:
        body: dict[str, Any] = {"error": exc.code, "reason": exc.reason}
        if exc.details:
            body["errors"] = exc.details
        headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, DependencyUnavailable) else None
        log = logger.warning if exc.status >= 500 else logger.info
        log("request refused", extra={"status": exc.status, "error": exc.code, "reason": exc.reason})
        return json_response(exc.status, body, headers)

    @app.not_found
    def _no_route(exc: NotFoundError) -> Response[str]:
        path = app.current_event.path
        return json_response(404, {"error": "not_found", "reason": f"no route {app.current_event.http_method} {path}"})

    @app.exception_handler(list(DEPENDENCY_ERRORS))  # type: ignore[untyped-decorator]
    def _dependency(exc: Exception) -> Response[str]:
        # A table or stream that throttles or cannot be reached past the clients' own retries: the client
        # may retry; nothing was half-written (each write is one conditional or batch call).
        logger.warning("dependency unavailable", extra={"error": type(exc).__name__, "detail": str(exc)[:300]})
        reason = "a storage service is busy or unreachable; retry shortly"
        return json_response(503, {"error": "unavailable", "reason": reason}, {"Retry-After": "1"})

    @app.exception_handler(UnicodeDecodeError)  # type: ignore[untyped-decorator]
    def _not_text(exc: UnicodeDecodeError) -> Response[str]:
        # API Gateway passes a body that is not UTF-8 on as base64; the resolver fails decoding it as JSON text.
        reason = f"the body is not UTF-8 text (byte {exc.start}); send JSON"
        return json_response(400, {"error": "bad_request", "reason": reason})

    @app.exception_handler(Exception)  # type: ignore[untyped-decorator]
    def _bug(exc: Exception) -> Response[str]:
        logger.exception("unhandled error")
        return json_response(500, {"error": "internal_error", "reason": "an unexpected error; it has been logged"})
