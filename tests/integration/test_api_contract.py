"""The API's contract as its handlers give it, through API Gateway events: the OpenAPI document the serving
function serves (security schemes from the routes table, POST /v1/events described though another function
answers it), Swagger UI's authorization, and CORS on the functions' own answers, errors included."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

from encore.config import EncoreConfig
from encore.routes import ROUTES_BY_PATH
from encore_local.apigw import LambdaContext, load_handler, rest_event
from encore_local.twin.services import TwinEndpoints

pytestmark = pytest.mark.integration
ORIGIN = "https://player.example.com"
OPERATIONS = {"get", "put", "post", "delete", "patch"}


def call(
    handler: ModuleType,
    method: str,
    path: str,
    *,
    resource: str | None = None,
    body: str | None = None,
    query: dict[str, str] | None = None,
    origin: str | None = ORIGIN,
) -> tuple[int, str, dict[str, str]]:
    headers = [("Content-Type", "application/json")] + ([("Origin", origin)] if origin else [])
    event = rest_event(method, path, resource=resource, query=list((query or {}).items()), headers=headers,
                       body=body, api_key="twin-key")  # fmt: skip
    resp = handler.lambda_handler(event, LambdaContext("contract"))
    out = {k: v[-1] for k, v in (resp.get("multiValueHeaders") or {}).items()} | (resp.get("headers") or {})
    return resp["statusCode"], resp["body"], out


@pytest.fixture(scope="module")
def handlers(twin: TwinEndpoints, config: EncoreConfig) -> dict[str, ModuleType]:
    return {"api": load_handler("api", config, quiet=True), "events": load_handler("events", config, quiet=True)}


@pytest.fixture(scope="module")
def document(handlers: dict[str, ModuleType]) -> dict[str, Any]:
    status, body, _ = call(handlers["api"], "GET", "/v1/openapi.json")
    assert status == 200
    return json.loads(body)  # type: ignore[no-any-return]


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in OPERATIONS:
                yield path, method, operation


def test_keyed_operations_declare_the_api_key_scheme_and_public_ones_none(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes["apiKey"] | {"description": ""} == {
        "type": "apiKey", "in": "header", "name": "x-api-key", "description": ""
    }  # fmt: skip
    assert "cognitoUserPool" not in schemes  # the twin's configuration asks for no authorizer
    seen = set()
    for path, method, operation in operations(document):
        route = ROUTES_BY_PATH[path]
        assert method.upper() in route.methods
        expected: list[dict[str, list[str]]] = [{"apiKey": []}] if route.api_key else []
        assert operation.get("security") == expected, (method, path)
        if route.api_key:
            assert {"403", "429"} <= set(operation["responses"]), (method, path)  # API Gateway's own answers
        seen.add(path)
    assert "/v1/health" in seen and "/v1/trending" in seen


def test_the_document_describes_post_events_with_its_body_and_answers(
    handlers: dict[str, ModuleType], document: dict[str, Any]
) -> None:
    operation = document["paths"]["/v1/events"]["post"]
    body = operation["requestBody"]
    assert body["required"] is True
    assert body["content"]["application/json"]["schema"]["$ref"] == "#/components/schemas/EventBatch"
    schemas = document["components"]["schemas"]
    events = schemas["EventBatch"]["properties"]["events"]
    assert events["items"]["$ref"] == "#/components/schemas/ListeningEvent" and events["maxItems"] == 500
    assert {"event_id", "user_id", "track_id", "action", "timestamp"} <= set(schemas["ListeningEvent"]["required"])
    assert {"202", "400", "409", "413", "503"} <= set(operation["responses"])
    assert operation["responses"]["202"]["content"]["application/json"]["schema"]["$ref"].endswith("EventsAccepted")
    assert operation["security"] == [{"apiKey": []}]
    # described, not served: API Gateway sends the route to the events function only
    status, _, _ = call(handlers["api"], "POST", "/v1/events", body='{"events": []}')
    assert status == 404


def test_listener_operations_also_declare_cognito_where_the_stage_requires_it(
    twin: TwinEndpoints, config: EncoreConfig
) -> None:
    cognito = EncoreConfig.for_stage(config.stage, {"serving": {"write_auth": "cognito"}})  # as prod has it
    handler = load_handler("api", cognito, quiet=True)
    doc = json.loads(call(handler, "GET", "/v1/openapi.json")[1])
    scheme = doc["components"]["securitySchemes"]["cognitoUserPool"]
    assert scheme["type"] == "apiKey" and scheme["in"] == "header" and scheme["name"] == "Authorization"
    for path, method, operation in operations(doc):
        route = ROUTES_BY_PATH[path]
        if route.listener:
            assert operation["security"] == [{"apiKey": [], "cognitoUserPool": []}], (method, path)
            assert "401" in operation["responses"]
        else:
            assert "cognitoUserPool" not in json.dumps(operation.get("security")), (method, path)


def test_swagger_ui_lets_a_person_enter_their_key(handlers: dict[str, ModuleType]) -> None:
    status, html, headers = call(handlers["api"], "GET", "/v1/docs")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert '"securitySchemes"' in html and '"x-api-key"' in html  # the "Authorize" dialog asks for it
    assert "persistAuthorization: true" in html


def test_answers_and_errors_of_both_functions_carry_the_cors_origin(handlers: dict[str, ModuleType]) -> None:
    answers = {
        "GET 200": call(handlers["api"], "GET", "/v1/health"),
        "GET 400": call(
            handlers["api"], "GET", "/v1/charts/US", resource="/v1/charts/{region}", query={"window": "year"}
        ),
        "GET 404": call(handlers["api"], "GET", "/v1/nowhere"),
        "POST 400": call(handlers["events"], "POST", "/v1/events", body='{"events": [{"user_id": 1}]}'),
        "POST 400 (not JSON)": call(handlers["events"], "POST", "/v1/events", body="{"),
    }
    for name, (status, body, headers) in answers.items():
        assert str(status) == name.split()[1], (name, body)
        assert headers.get("Access-Control-Allow-Origin") == "*", (name, headers)  # serving.cors_origins: ["*"]
    assert json.loads(answers["POST 400"][1])["errors"]  # per-field reasons, as the document says


def test_with_several_origins_the_matching_one_is_echoed(twin: TwinEndpoints) -> None:
    origins = ["https://player.example.com", "https://charts.example.com"]
    config = EncoreConfig.for_stage("local", {"serving": {"cors_origins": origins}})
    handler = load_handler("api", config, quiet=True)
    try:
        _, _, headers = call(handler, "GET", "/v1/health", origin="https://charts.example.com")
        assert headers["Access-Control-Allow-Origin"] == "https://charts.example.com"
        _, _, headers = call(handler, "GET", "/v1/health", origin="https://elsewhere.example.net")
        assert "Access-Control-Allow-Origin" not in headers
    finally:
        load_handler("api", EncoreConfig.for_stage("local"), quiet=True)  # the environment as the others expect it


def test_a_batch_already_in_progress_is_a_conflict_not_a_server_error(
    handlers: dict[str, ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    def in_progress(batch: dict[str, Any]) -> dict[str, Any]:
        raise IdempotencyAlreadyInProgressError("the same events are being processed")

    monkeypatch.setattr(handlers["events"], "accept", in_progress)
    event = {
        "event_id": "0b9f6a0e-3c1d-4c7e-9a55-2f5d1f0f6a01",
        "user_id": "u1",
        "track_id": "t1",
        "action": "complete",
        "timestamp": int(time.time() * 1000) - 1000,
        "played_ms": 1000,
        "track_duration_ms": 1000,
        "region": "US",
    }
    status, body, headers = call(handlers["events"], "POST", "/v1/events", body=json.dumps({"events": [event]}))
    assert status == 409 and json.loads(body)["error"] == "conflict"
    assert headers["Retry-After"] == "1" and headers["Access-Control-Allow-Origin"] == "*"
