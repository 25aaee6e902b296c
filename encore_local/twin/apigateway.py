"""The twin's API Gateway: an HTTP server on loopback that turns each request into a REST proxy event for the
function the stack's method integrates with, run from its synthesized code asset and layers
(``encore_local.twin.lambda_``), enforcing the API key and the usage plan's throttle as API Gateway does.

Which function serves a method and resource is read from the template (``TwinStack.api_integrations``); which
routes need a key is ``encore.routes.ROUTES`` (the table the CDK app builds API Gateway from). Answers API Gateway
gives itself are reproduced, each with the CORS header the stack's gateway responses add: 403 ``{"message":
"Forbidden"}`` without a valid key, 429 ``{"message": "Too Many Requests"}`` past the throttle, 403 ``Missing
Authentication Token`` for a resource or method the API lacks (any method, ``HEAD`` answered without a body), 413
past the 10 MB payload limit, a body sent with ``Content-Encoding: gzip`` or ``deflate`` decompressed (415
``Unsupported Media Type`` for another coding or a body not compressed with it), 504 ``Endpoint request timed
out`` past the 29 s integration timeout, and 502 ``{"message": "Internal server error"}`` when the function fails
or its instance dies mid-invocation. OPTIONS gets
the stack's preflight answer. Path parameters reach the handler percent-decoded, the path as sent. Framing the
server cannot read (a bad request line or version, a bad or doubled ``Content-Length``, a malformed chunk, headers
too long) gets a JSON answer and the connection closed; there is no server banner. It does not verify Cognito
tokens.

Behind the front door is a pool of warm Lambda instances, each running one invocation at a time, as Lambda
does: Powertools keeps the current event on its router class, so two invocations in one process would read
each other's requests (the reliability suite's load run caught a POST that saw a GET's empty body). A request
takes whichever instance is idle, the most recently used first, and waits only if all are busy, as API
Gateway waits for Lambda to scale: ``prestart`` instances of each function (``workers`` unless told) start
with the server, more (a cold start each) as concurrent requests need them, up to ``workers``, each in a process
of its own fed events over a pipe. Every answer carries the time spent inside the handler in
``x-twin-handler-ms`` (the twin's stand-in for API Gateway's IntegrationLatency metric).
"""

from __future__ import annotations

import base64
import functools
import json
import threading
import time
import zlib
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from encore.config import EncoreConfig
from encore.routes import CORS_ALLOW_HEADERS, CORS_ALLOW_METHODS, ROUTES, Route, allowed_origin
from encore_local.apigw import match_route, rest_event
from encore_local.loopback import LoopbackServer, reply
from encore_local.twin.assembly import Deployment, Function, TwinStack
from encore_local.twin.iam import client_for
from encore_local.twin.lambda_ import FunctionError, IntegrationTimeout, LambdaService
from encore_local.twin.logs import LogSubscriptions
from encore_local.twin.provision import dynamic_references

DEFAULT_API_KEY = "encore-twin-key"


def _client_as(environment_of: Callable[[str | None], dict[str, str]], principal: str | None, service: str) -> Any:
    return client_for(service, environment_of(principal))


MAX_BODY = 10 * 1024 * 1024  # API Gateway's payload limit
INTEGRATION_TIMEOUT_S = 29.0  # API Gateway's limit on a Lambda integration's answer
IDLE_TIMEOUT_S = 60.0
_HEX = frozenset(b"0123456789abcdefABCDEF")


class FramingError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def read_body(stream: Any, headers: Any) -> bytes | None:
    """The request's body, framed by ``Content-Length`` or chunked ``Transfer-Encoding``, at most ``MAX_BODY``.
    Raises ``FramingError`` (answered, then the connection closed) for framing that cannot be read, and
    ``ConnectionError`` when the client leaves before the body ends."""
    lengths = headers.get_all("Content-Length") or []
    encoding = (headers.get("Transfer-Encoding") or "").strip().lower()
    if encoding:
        if encoding != "chunked" or lengths:
            raise FramingError(400, f"unsupported Transfer-Encoding {encoding!r} (or with a Content-Length)")
        return _read_chunks(stream)
    if not lengths:
        return None
    if len(set(lengths)) > 1 or not all(v.strip().isdigit() for v in lengths):
        raise FramingError(400, f"invalid Content-Length {', '.join(lengths)!r}")
    length = int(lengths[0])
    if length > MAX_BODY:
        raise FramingError(413, "Request Too Long")
    body = stream.read(length) if length else b""
    if len(body) < length:
        raise ConnectionError("the body ended early")
    return body or None


def _read_chunks(stream: Any) -> bytes | None:
    body = bytearray()
    while True:
        line = stream.readline(1024)
        if not line:
            raise ConnectionError("the body ended early")
        size_text = line.split(b";", 1)[0].strip()
        if not size_text or not set(size_text) <= _HEX:
            raise FramingError(400, "malformed chunk size")
        size = int(size_text, 16)
        if len(body) + size > MAX_BODY:
            raise FramingError(413, "Request Too Long")
        if size == 0:
            while stream.readline(1024) not in (b"\r\n", b"\n", b""):  # trailer fields, then the blank line
                pass
            return bytes(body) or None
        chunk = stream.read(size)
        if len(chunk) < size:
            raise ConnectionError("the body ended early")
        body += chunk
        if stream.readline(3) not in (b"\r\n", b"\n"):
            raise FramingError(400, "malformed chunk: no line end after its data")


def decompressed(body: bytes | None, encoding: str | None) -> bytes | None:
    """The body as API Gateway hands it on: decompressed when ``Content-Encoding`` is a coding it supports
    (gzip, deflate, identity); ``FramingError`` 415 for another coding or a body not compressed with it, 413 when
    it inflates past the payload limit."""
    coding = (encoding or "identity").strip().lower()
    if coding == "identity" or not body:
        return body
    if coding not in ("gzip", "deflate"):
        raise FramingError(415, "Unsupported Media Type")
    inflater = zlib.decompressobj(wbits=31 if coding == "gzip" else 15)
    try:
        data = inflater.decompress(body, MAX_BODY + 1)
    except zlib.error:
        raise FramingError(415, "Unsupported Media Type") from None
    if len(data) > MAX_BODY:
        raise FramingError(413, "Request Too Long")
    if not inflater.eof:
        raise FramingError(415, "Unsupported Media Type")  # truncated
    return data


class TokenBucket:
    """The usage plan's throttle: ``rate`` requests per second with bursts of ``burst``."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.capacity = rate, float(burst)
        self.tokens, self.updated = float(burst), time.monotonic()
        self.lock = threading.Lock()

    def take(self) -> bool:
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
            if self.tokens >= 1:
                self.tokens -= 1
                return True
            return False


class TwinApi(LoopbackServer):
    def __init__(
        self,
        config: EncoreConfig,
        stack: TwinStack,
        function_environment: Callable[[Function], dict[str, str]],
        log_dir: Path,
        *,
        api_keys: tuple[str, ...] = (DEFAULT_API_KEY,),
        environment_of: Callable[[str | None], dict[str, str]] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        rate: float | None = None,
        burst: int | None = None,
        workers: int = 1,
        prestart: int | None = None,
        echo: bool = False,
    ) -> None:
        self.config = config
        self.workers = max(1, workers)
        self.prestart = min(self.workers, prestart or self.workers)  # instances of each function started with it
        self.stack = stack
        deployment = Deployment(stack.region)
        deployment.add(stack)
        # ``environment_of(principal)``: what calls the twin's AWS as that principal (None: the operator). With it,
        # the keys the template gives a value (the site's, from its secret) are accepted as CloudFormation resolves
        # them, and the functions' output reaches their log groups' subscriptions.
        self.api_keys = set(api_keys)
        outputs = None
        if environment_of is not None:
            operator = functools.partial(_client_as, environment_of, None)
            self.api_keys |= {dynamic_references(v, operator) for v in stack.api_key_values()}
            outputs = LogSubscriptions(deployment, lambda principal: _client_as(environment_of, principal, "firehose"))
        self.integration_timeout_s = INTEGRATION_TIMEOUT_S
        # The functions' output goes to ``log_dir``'s lambda.log (and with ``echo`` to standard error too).
        self.lambdas = LambdaService(deployment, function_environment, log_dir, max_instances=self.workers,
                                     on_output=outputs, echo=echo)  # fmt: skip
        # What each method and resource integrates with, as the stack's API Gateway routes it.
        self.integrations = stack.api_integrations()
        self.templates = [r.path for r in ROUTES]
        self.by_path: dict[str, Route] = {r.path: r for r in ROUTES}
        deploy = config.deploy
        self.buckets = {
            key: TokenBucket(rate or deploy.api_rate_limit, burst or deploy.api_burst_limit) for key in self.api_keys
        }
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # answers leave at once (loopback.reply writes each in one piece)
            timeout = IDLE_TIMEOUT_S  # a connection that sends nothing for this long is closed

            def log_message(self, format: str, *args: Any) -> None:
                return

            def version_string(self) -> str:
                return ""  # no server banner

            def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
                """http.server's answer to framing it cannot parse (a bad request line or version, headers too
                long or too many): API Gateway's JSON, and the connection closed."""
                self.close_connection = True
                self._reply(code, {"message": message or HTTPStatus(code).phrase}, {"Connection": "close"})

            def __getattr__(self, name: str) -> Any:
                if name.startswith("do_"):  # any method: API Gateway answers those the API lacks itself
                    return self._handle
                raise AttributeError(name)

            def _handle(self) -> None:
                try:
                    body = decompressed(read_body(self.rfile, self.headers), self.headers.get("Content-Encoding"))
                except FramingError as exc:
                    self.send_error(exc.status, exc.message)
                    return
                except ConnectionError:  # the client left mid-body: nobody to answer
                    self.close_connection = True
                    return
                status, payload, headers = api.dispatch(self.command, self.path, list(self.headers.items()), body)
                self._reply(status, payload, headers)

            def _reply(self, status: int, payload: Any, headers: dict[str, str]) -> None:
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                headers.setdefault("Content-Type", "application/json")
                reply(self, status, data, headers, head_only=self.command == "HEAD")

        LoopbackServer.__init__(self, Handler, host, port, "twin-api")

    @property
    def instances(self) -> list[Any]:
        return self.lambdas.instances

    def start(self) -> str:
        try:
            functions = {fn.name: fn for fn in self.integrations.values()}
            self.lambdas.start(list(functions.values()), self.prestart)  # more as requests need them
        except BaseException:
            self.stop()
            raise
        return super().start()

    def stop(self) -> None:
        if self.thread.is_alive():
            super().stop()
        else:
            self.httpd.server_close()
        self.lambdas.close()

    def dispatch(
        self, method: str, raw_path: str, headers: list[tuple[str, str]], body: bytes | None
    ) -> tuple[int, Any, dict[str, str]]:
        url = urlsplit(raw_path)
        path = url.path.rstrip("/") or "/"
        origin = next((v for k, v in headers if k.lower() == "origin"), None)
        cors = self._gateway_cors(origin)
        found = match_route(self.templates, path)
        if found is None:
            return 403, {"message": "Missing Authentication Token"}, cors
        template, raw_params = found
        params = {name: unquote(value) for name, value in raw_params.items()}  # API Gateway decodes them
        route = self.by_path[template]
        if method == "OPTIONS":  # the stack's preflight (a mock integration): no key, no function
            allow = allowed_origin(self.config.serving.cors_origins, origin)
            preflight = {"Access-Control-Allow-Headers": ",".join(CORS_ALLOW_HEADERS),
                         "Access-Control-Allow-Methods": ",".join(CORS_ALLOW_METHODS)}  # fmt: skip
            return 204, b"", preflight | ({"Access-Control-Allow-Origin": allow} if allow else {})
        function = self.integrations.get((method, template))
        if method not in route.methods or function is None:
            return 403, {"message": "Missing Authentication Token"}, cors
        key = next((v for k, v in headers if k.lower() == "x-api-key"), None)
        if route.api_key:
            if key not in self.api_keys:
                return 403, {"message": "Forbidden"}, cors
            if not self.buckets[key].take():
                return 429, {"message": "Too Many Requests"}, cors
        event = rest_event(method, path, resource=template, path_parameters=params, query=parse_qsl(url.query),
                           headers=headers, body=body, stage=self.config.stage, api_key=key)  # fmt: skip
        return self._integrate(function, event, cors)

    def _gateway_cors(self, origin: str | None) -> dict[str, str]:
        """The CORS header of API Gateway's own answers, as the stack's gateway responses set it (cdk_app.api)."""
        origins = self.config.serving.cors_origins
        if len(origins) == 1:
            return {"Access-Control-Allow-Origin": origins[0]}
        if len(origins) > 1:
            return {"Vary": "Origin"} | ({"Access-Control-Allow-Origin": origin} if origin else {})
        return {}

    def _integrate(
        self, function: Function, event: dict[str, Any], cors: dict[str, str] | None = None
    ) -> tuple[int, Any, dict[str, str]]:
        """The Lambda proxy integration: the handler's answer as HTTP, or API Gateway's 502 when the function
        failed (it raised, its instance died mid-invocation, or its answer is not a proxy response)."""
        try:
            result, inside_ms = self.lambdas.invoke_function(function, event, self.integration_timeout_s)
            status = int(result["statusCode"])
        except IntegrationTimeout:
            return 504, {"message": "Endpoint request timed out"}, dict(cors or {})
        except (FunctionError, KeyError, TypeError, ValueError):
            return 502, {"message": "Internal server error"}, dict(cors or {})
        out_headers = {k: v[-1] for k, v in (result.get("multiValueHeaders") or {}).items()}
        out_headers.update(result.get("headers") or {})
        out_headers["x-twin-handler-ms"] = f"{inside_ms:.3f}"
        raw = result.get("body") or ""
        data = base64.b64decode(raw) if result.get("isBase64Encoded") else raw.encode()
        return status, data, out_headers
