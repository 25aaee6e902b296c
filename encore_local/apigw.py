"""API Gateway REST proxy events, as API Gateway builds them, and loading a Lambda handler in this process.

The twin's HTTP front door and the tests both use these, so a handler sees here exactly what it sees in AWS:
resource template, path parameters, single and multi-value headers and query strings, and a request context
with the request id, the stage and the API key's identity.
"""

from __future__ import annotations

import base64
import functools
import importlib.util
import json
import os
import re
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from encore.clients import reset_clients
from encore.config import EncoreConfig, runtime_environment
from encore.routes import ROUTES
from encore_local.twin.lambda_runtime import Context

ROOT = Path(__file__).resolve().parent.parent
LAMBDAS = ROOT / "lambdas"


@functools.cache
def _template_pattern(template: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\{(\w+)\\}", r"(?P<\1>[^/]+)", re.escape(template)) + "$")


def match_route(templates: Sequence[str], path: str) -> tuple[str, dict[str, str]] | None:
    """The resource template (``/v1/users/{user_id}``) matching ``path``, with its path parameters."""
    for template in templates:
        m = _template_pattern(template).match(path)
        if m:
            return template, m.groupdict()
    return None


def rest_event(
    method: str,
    path: str,
    *,
    resource: str | None = None,
    path_parameters: Mapping[str, str] | None = None,
    query: Sequence[tuple[str, str]] = (),
    headers: Sequence[tuple[str, str]] = (),
    body: bytes | str | None = None,
    stage: str = "local",
    api_key: str | None = None,
    source_ip: str = "127.0.0.1",
) -> dict[str, Any]:
    single_headers: dict[str, str] = {}
    multi_headers: dict[str, list[str]] = {}
    for name, value in headers:
        single_headers[name] = value
        multi_headers.setdefault(name, []).append(value)
    single_query: dict[str, str] = {}
    multi_query: dict[str, list[str]] = {}
    for name, value in query:
        single_query[name] = value
        multi_query.setdefault(name, []).append(value)
    is_base64 = False
    if isinstance(body, bytes):
        raw = body
        try:
            body = raw.decode("utf-8")
        except UnicodeDecodeError:
            body, is_base64 = base64.b64encode(raw).decode(), True
    request_id = str(uuid.uuid4())
    now = time.time()
    return {
        "resource": resource or path,
        "path": path,
        "httpMethod": method,
        "headers": single_headers or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": single_query or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": dict(path_parameters) if path_parameters else None,
        "stageVariables": None,
        "requestContext": {
            "resourceId": "twin",
            "resourcePath": resource or path,
            "httpMethod": method,
            "extendedRequestId": request_id,
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "path": f"/{stage}{path}",
            "accountId": "123456789012",
            "protocol": "HTTP/1.1",
            "stage": stage,
            "domainPrefix": "localhost",
            "requestTimeEpoch": int(now * 1000),
            "requestId": request_id,
            "identity": {
                "sourceIp": source_ip,
                "userAgent": single_headers.get("User-Agent") or single_headers.get("user-agent"),
                "apiKey": api_key,
                "apiKeyId": "twin-key" if api_key else None,
                "accessKey": None,
                "accountId": None,
                "caller": None,
                "user": None,
                "userArn": None,
                "cognitoIdentityId": None,
                "cognitoIdentityPoolId": None,
                "cognitoAuthenticationType": None,
                "cognitoAuthenticationProvider": None,
            },
            "domainName": "localhost",
            "apiId": "twin",
        },
        "body": body,
        "isBase64Encoded": is_base64,
    }


@dataclass(frozen=True)
class Answered:
    """A handler's answer to an API Gateway proxy event."""

    status: int
    body: str
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body)


def invoke(
    handler: ModuleType,
    method: str,
    path: str,
    *,
    query: Mapping[str, str] | Sequence[tuple[str, str]] = (),
    body: Any = None,
    headers: Sequence[tuple[str, str]] = (("Content-Type", "application/json"),),
    api_key: str | None = "twin-key",
) -> Answered:
    """Call a function's handler in this process as API Gateway would for a request: the resource template and
    path parameters found from ``encore.routes``, ``body`` sent as given when text or bytes and as JSON
    otherwise. The tests' one way to call a handler directly."""
    found = match_route([r.path for r in ROUTES], path)
    resource, params = found if found else (path, {})
    text = body if body is None or isinstance(body, str | bytes) else json.dumps(body)
    pairs = list(query.items()) if isinstance(query, Mapping) else list(query)
    event = rest_event(method, path, resource=resource, path_parameters=params or None, query=pairs,
                       headers=headers, body=text, api_key=api_key)  # fmt: skip
    resp = handler.lambda_handler(event, LambdaContext(handler.__name__))
    answered = {k: v[-1] for k, v in (resp.get("multiValueHeaders") or {}).items()} | (resp.get("headers") or {})
    return Answered(resp["statusCode"], resp["body"], answered)


def call(handler: ModuleType, method: str, path: str, query: Mapping[str, str] | None = None,
         body: Any = None) -> tuple[int, Any]:  # fmt: skip
    """:func:`invoke` with the API key and a JSON body: the status and the body parsed (text if it is not JSON)."""
    answer = invoke(handler, method, path, query=query or {}, body=body)
    try:
        return answer.status, answer.json()
    except json.JSONDecodeError:
        return answer.status, answer.body


def home(handler: ModuleType, user: str, query: Mapping[str, str] | None = None) -> tuple[int, Any]:
    """``GET /v1/users/{user}/recommendations`` through :func:`call`."""
    return call(handler, "GET", f"/v1/users/{user}/recommendations", query)


class LambdaContext(Context):
    """Lambda's context object, for a handler called directly in this process."""

    def __init__(self, name: str, timeout_s: float = 10.0) -> None:
        super().__init__(name, f"arn:aws:lambda:us-east-1:123456789012:function:{name}", 1024, timeout_s)


def function_environment(config: EncoreConfig, *, quiet: bool = False) -> dict[str, str]:
    """What the stack sets on every function, for this configuration (see cdk_app.functions).

    ``quiet`` keeps a long-running twin's terminal readable: warnings only, and no EMF lines on stdout.
    """
    env = runtime_environment(config) | {
        "POWERTOOLS_SERVICE_NAME": config.project,
        "POWERTOOLS_METRICS_NAMESPACE": "Encore",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_DEV": "false",
    }
    # Both set either way: the environment outlives one load, and a quiet load must not silence the next one.
    if quiet:
        return env | {"POWERTOOLS_LOG_LEVEL": "WARNING", "POWERTOOLS_METRICS_DISABLED": "true"}
    return env | {"POWERTOOLS_LOG_LEVEL": "INFO", "POWERTOOLS_METRICS_DISABLED": "false"}


def load_handler(folder: str, config: EncoreConfig, module: str = "handler", *, quiet: bool = False) -> ModuleType:
    """Import ``lambdas/<folder>/<module>.py`` afresh with the function's environment, as a cold start does."""
    os.environ.update(function_environment(config, quiet=quiet))
    reset_clients()
    name = f"encore_lambda_{folder}_{module}"
    spec = importlib.util.spec_from_file_location(name, LAMBDAS / folder / f"{module}.py")
    assert spec is not None and spec.loader is not None
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[name] = loaded
    spec.loader.exec_module(loaded)
    return loaded
