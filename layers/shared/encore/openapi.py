"""The API's OpenAPI document: the serving function's routes, the routes other functions serve, and on every
operation the security the routes table (``encore.routes.ROUTES``) gives it.

Security schemes: ``apiKey`` (header ``x-api-key``) on every keyed operation; where the stage sets
``serving.write_auth = "cognito"``, ``cognitoUserPool`` (a user-pool token in ``Authorization``, as API Gateway
itself exports a Cognito authorizer) on the listener routes as well, both required together. Swagger UI's
"Authorize" button takes them from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.event_handler.openapi.merge import OpenAPIMerge
from aws_lambda_powertools.event_handler.openapi.models import APIKey, OpenAPI, SecurityScheme
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse

from encore.models import ErrorBody
from encore.routes import ROUTES_BY_PATH, Route

WriteAuth = Literal["none", "cognito"]
API_KEY = "apiKey"
COGNITO = "cognitoUserPool"
_OPERATIONS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}

# API Gateway's own answers (before any function runs), as the twin reproduces them.
_GATEWAY_BODY = {
    "type": "object",
    "properties": {"message": {"type": "string"}},
    "required": ["message"],
}
_KEY_ANSWERS = {
    403: "no API key, or one API Gateway does not know (API Gateway)",
    429: "past the usage plan's rate, burst or daily quota for this key (API Gateway)",
}
_TOKEN_ANSWERS = {401: "no Cognito token, or an expired or invalid one (API Gateway)"}
# Where the HTTP request cannot be read (its framing, its size, its encoding), API Gateway answers before any
# function, in its own shape: these statuses may carry either body.
_FRAMING = (400, 413, 415)


_DESCRIPTIONS = {
    400: "invalid parameters (each named, with its reason)",
    404: "unknown track, listener or model version",
    413: "the body is over 1 MiB",
    415: "the body is not sent as application/json (UTF-8)",
    503: "a table or the lake is throttled or unreachable past its retries; retry after Retry-After seconds",
}


def answers(model: Any, *codes: int, ok: int = 200) -> dict[int, OpenAPIResponse]:
    """OpenAPI declarations of a route's answers: its model on ``ok`` (200, or 202 for work accepted and
    finished later), and the errors it can give."""
    declared: dict[int, OpenAPIResponse] = {
        ok: {"description": "OK" if ok == 200 else "Accepted", "content": {"application/json": {"model": model}}}
    }
    for code in (*codes, 503):
        declared[code] = {"description": _DESCRIPTIONS[code], "content": {"application/json": {"model": ErrorBody}}}
    return declared


def security_schemes(write_auth: WriteAuth) -> dict[str, SecurityScheme]:
    schemes: dict[str, SecurityScheme] = {
        API_KEY: APIKey.model_validate(
            {
                "type": "apiKey",
                "in": "header",
                "name": "x-api-key",
                "description": "the client's API key: it identifies, meters and throttles a client (usage plan); "
                "it is not authorization",
            }
        )
    }
    if write_auth == "cognito":
        schemes[COGNITO] = APIKey.model_validate(
            {
                "type": "apiKey",
                "in": "header",
                "name": "Authorization",
                "description": "the listener's Cognito user-pool ID token (JWT), required on the listener routes",
                "openapi_extensions": {"x-amazon-apigateway-authtype": "cognito_user_pools"},
            }
        )
    return schemes


def requirements(route: Route, write_auth: WriteAuth) -> list[dict[str, list[str]]]:
    """The operation's ``security``: one requirement naming every scheme it needs (all of them, together)."""
    needed: dict[str, list[str]] = {}
    if route.api_key:
        needed[API_KEY] = []
    if route.listener and write_auth == "cognito":
        needed[COGNITO] = []
    return [needed] if needed else []


def secure(document: dict[str, Any], write_auth: WriteAuth) -> dict[str, Any]:
    """Each operation of ``document`` with the security its route has, and API Gateway's own answers to it.

    An operation API Gateway does not route (not in ``ROUTES``) is an error: the document would promise it."""
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            if method not in _OPERATIONS:
                continue
            route = ROUTES_BY_PATH.get(path)
            if route is None or method.upper() not in route.methods:
                raise ValueError(f"the document describes {method.upper()} {path}, which encore.routes does not route")
            operation["security"] = requirements(route, write_auth)
            answers = (_KEY_ANSWERS if route.api_key else {}) | (
                _TOKEN_ANSWERS if route.listener and write_auth == "cognito" else {}
            )
            for status, description in answers.items():
                operation["responses"].setdefault(
                    status, {"description": description, "content": {"application/json": {"schema": _GATEWAY_BODY}}}
                )
            for status in _FRAMING:
                declared = operation["responses"].get(status) or operation["responses"].get(str(status))
                if declared and "content" in declared:
                    body = declared["content"]["application/json"]
                    body["schema"] = {"anyOf": [body["schema"], _GATEWAY_BODY]}
                    declared["description"] += "; or API Gateway's own {message} when the request cannot be read"
    return document


class DocumentedResolver(APIGatewayRestResolver):
    """A REST resolver whose OpenAPI document (``get_openapi_schema``, and so ``get_openapi_json_schema`` and
    Swagger UI) is the whole API's: its own routes, merged with those of ``described`` (resolvers that only
    describe routes another function answers, such as ``encore.events_route.described()``), each operation
    secured as ``encore.routes`` says. ``described`` routes are never answered here."""

    def __init__(
        self, *, write_auth: WriteAuth, described: Sequence[APIGatewayRestResolver] = (), **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.write_auth = write_auth
        self.described = tuple(described)

    def get_openapi_schema(self, **kwargs: Any) -> OpenAPI:
        own = super().get_openapi_schema(**kwargs)
        merge = OpenAPIMerge(
            title=own.info.title,
            version=own.info.version,
            openapi_version=own.openapi,
            description=own.info.description,
            servers=own.servers,
            security_schemes=security_schemes(self.write_auth),
            on_conflict="error",  # a route both here and elsewhere would be answered by one function only
        )
        for document in (own, *(other.get_openapi_schema() for other in self.described)):
            merge.add_schema(document.model_dump(by_alias=True, exclude_none=True))
        return OpenAPI(**secure(merge.get_openapi_schema(), self.write_auth))
