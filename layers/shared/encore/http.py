"""HTTP for the API handlers: the one place domain errors become status codes, request bodies read strictly,
JSON responses, and CORS."""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, CORSConfig, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.middlewares.openapi_validation import OpenAPIRequestValidationMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.utilities.data_classes.common import BaseProxyEvent

from encore.errors import BadRequest, DependencyUnavailable, EncoreError, PayloadTooLarge, UnsupportedMediaType
from encore.models import describe_errors
from encore.observability import logger
from encore.profiles import TABLE_ERRORS
from encore.routes import CORS_ALLOW_HEADERS

JSON = "application/json"
MAX_BODY_BYTES = 1024 * 1024  # 500 events are ~200 KB; anything near this is not a request Encore expects
# No contract holds a number longer than an epoch in milliseconds: far past it, a number is not one a client
# meant, and Python's int parsing would fail on thousands of digits with an error of another kind.
MAX_NUMBER_CHARS = 40
# An error answer names at most this many fields and counts the rest (500 bad events would be ~100 KB).
MAX_LISTED_ERRORS = 20
_KINDS = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "true or false"}


class _NotANumberWeRead(ValueError):
    pass


# Every digit as a 9, then one substring search for a run that long: a fifth of the JSON parse (a regex is 2-3x
# the parse itself).
_DIGITS_AS_NINES = str.maketrans("012345678", "999999999")
_LONG_RUN = "9" * (MAX_NUMBER_CHARS - 1)


def _checked(text: str) -> str:
    if len(text) > MAX_NUMBER_CHARS:
        raise _NotANumberWeRead(f"a number in the body has {len(text)} characters (at most {MAX_NUMBER_CHARS})")
    return text


def _int(text: str) -> int:
    return int(_checked(text))


def _float(text: str) -> float:
    return float(_checked(text))


def _constant(name: str) -> Any:
    raise _NotANumberWeRead(f"{name} is not a JSON number")


# A lone surrogate can come only from a \uD800-\uDFFF escape (or such a character in the text): only then is the
# parsed body walked for one.
_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]|[\ud800-\udfff]")


def _has_lone_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(part for item in node.items() for part in item)
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, str):
            try:
                node.encode("utf-8")
            except UnicodeEncodeError:
                return True
    return False


def _body_text(event: BaseProxyEvent) -> str:
    """The body as text: base64-decoded (and so checked as UTF-8) if API Gateway passed it so; its size checked."""
    raw = event.body or ""
    if not event.is_base64_encoded:
        size = len(raw.encode("utf-8", "surrogatepass"))
    else:
        try:
            data = base64.b64decode(raw, validate=True)
        except binascii.Error:
            raise BadRequest("the body is marked base64-encoded but is not base64") from None
        size = len(data)
    if size > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"the body is {size // 1024} KiB, over the {MAX_BODY_BYTES // 1024} KiB limit")
    if (event.is_base64_encoded and data[:2] == b"\x1f\x8b") or raw.startswith("\x1f\ufffd"):  # gzip's magic
        raise BadRequest("the body is gzip-compressed: send it with Content-Encoding: gzip, or uncompressed")
    if not event.is_base64_encoded:
        return raw
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        byte = f"byte {exc.start} is 0x{data[exc.start]:02x}"
        raise BadRequest(f"the body is not UTF-8 text ({byte}): send JSON in UTF-8") from None


def json_body(event: BaseProxyEvent, example: str | None = None) -> dict[str, Any]:
    """The request's body as a JSON object, or the 4xx that says what is wrong with it: no body, a media type
    other than JSON (415), over ``MAX_BODY_BYTES`` (413), compressed without saying so, not UTF-8, not JSON,
    nested past what Python's parser reads, a number longer than any contract holds, a string that is not
    Unicode text, or JSON that is not an object. ``example`` shows the
    expected shape in the reasons.

    API Gateway has already decompressed a body sent with ``Content-Encoding: gzip`` (or refused it with 415).
    A body it passes on base64-encoded (bytes that are not UTF-8 text) is decoded here, so the reasons can name
    the byte that is wrong."""
    wanted = f"a JSON object ({example})" if example else "a JSON object"
    if not event.body:
        raise BadRequest(f"the body is empty: send {wanted}")
    media = (event.headers.get("content-type") or "").split(";")
    kind, params = media[0].strip().lower(), [p.strip().lower().replace(" ", "") for p in media[1:]]
    if kind != JSON and not (kind.startswith("application/") and kind.endswith("+json")):
        sent = f"as '{kind}'" if kind else "without a Content-Type"
        raise UnsupportedMediaType(f"the body was sent {sent}: send JSON with Content-Type: application/json")
    charset = next((p.removeprefix("charset=").strip('"') for p in params if p.startswith("charset=")), "utf-8")
    if charset not in ("utf-8", "utf8"):
        raise UnsupportedMediaType(f"the body is declared as charset {charset}: send it as UTF-8")
    text = _body_text(event)
    try:
        # The numbers are checked one by one (a Python call each) only when the text holds a run of digits that
        # long somewhere (in a string, as likely): the usual body parses at C speed.
        checked = _LONG_RUN in text.translate(_DIGITS_AS_NINES)
        value = json.loads(text, parse_constant=_constant, parse_int=_int if checked else None,
                           parse_float=_float if checked else None)  # fmt: skip
    except json.JSONDecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except _NotANumberWeRead as exc:
        raise BadRequest(f"the body is not JSON Encore reads: {exc}") from None
    except RecursionError:
        raise BadRequest("the body nests arrays or objects too deeply to be read (hundreds of levels)") from None
    could_hold_one = "\\u" in text or not text.isascii()  # two C-speed scans rule out most bodies
    if could_hold_one and _SURROGATE.search(text) and _has_lone_surrogate(value):
        raise BadRequest("a string in the body holds a lone UTF-16 surrogate (an unpaired \\uD800-\\uDFFF escape)")
    if not isinstance(value, dict):
        raise BadRequest(f"the body must be {wanted}, not {_KINDS.get(type(value), 'null')}")
    return value


class _StrictBodies(OpenAPIRequestValidationMiddleware):
    """Powertools' request validation, reading the body with :func:`json_body`: its own reader accepts form
    data, takes the first element of an array sent for an object, and lets Python's JSON errors other than
    ``JSONDecodeError`` (too deep, too long a number) out as 500s."""

    def _get_body(self, app: Any) -> dict[str, Any]:
        return json_body(app.current_event)


def read_bodies_strictly(app: APIGatewayRestResolver) -> None:
    """Validate ``app``'s request bodies as :func:`json_body` reads them (Powertools 3.x keeps its validation
    middleware on the resolver under this name; tests/unit/test_http.py fails if that changes)."""
    app._request_validation_middleware = _StrictBodies()  # type: ignore[no-untyped-call]


def error_body(code: str, reason: str, errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """An error answer (``encore.models.ErrorBody``): at most ``MAX_LISTED_ERRORS`` field errors, and a count
    of those left out."""
    body: dict[str, Any] = {"error": code, "reason": reason}
    if errors:
        body["errors"] = errors[:MAX_LISTED_ERRORS]
        if len(errors) > MAX_LISTED_ERRORS:
            body["errors_not_listed"] = len(errors) - MAX_LISTED_ERRORS
    return body


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
        body = error_body(exc.code, exc.reason, exc.details)
        headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, DependencyUnavailable) else None
        log = logger.warning if exc.status >= 500 else logger.info
        log("request refused", extra={"status": exc.status, "error": exc.code, "reason": exc.reason})
        return json_response(exc.status, body, headers)

    @app.exception_handler(RequestValidationError)  # type: ignore[untyped-decorator]
    def _bad_parameters(exc: RequestValidationError) -> Response[str]:
        # Powertools' validation of a route's annotated parameters and body, each bad one named; its locations
        # begin with where the value came from ("query", "body"), which only a field of the body leaves out.
        located = [{**e, "loc": e["loc"][1:] or e["loc"][:1]} for e in exc.errors()]
        return json_response(400, error_body("bad_request", "invalid parameters", describe_errors(located)))

    @app.not_found
    def _no_route(exc: NotFoundError) -> Response[str]:
        path = app.current_event.path
        return json_response(404, {"error": "not_found", "reason": f"no route {app.current_event.http_method} {path}"})

    @app.exception_handler(list(TABLE_ERRORS))  # type: ignore[untyped-decorator]
    def _dependency(exc: Exception) -> Response[str]:
        # The stores raise StoreUnavailable (an EncoreError, above); this is the net under a client call made
        # outside one (Powertools' idempotency layer): the client may retry.
        logger.warning("dependency unavailable", extra={"error": type(exc).__name__, "detail": str(exc)[:300]})
        reason = "a storage service is busy or unreachable; retry shortly"
        return json_response(503, {"error": "unavailable", "reason": reason}, {"Retry-After": "1"})

    @app.exception_handler(Exception)  # type: ignore[untyped-decorator]
    def _bug(exc: Exception) -> Response[str]:
        logger.exception("unhandled error")
        return json_response(500, {"error": "internal_error", "reason": "an unexpected error; it has been logged"})
