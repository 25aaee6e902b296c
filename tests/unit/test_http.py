"""Request bodies as the API reads them (``encore.http.json_body``): every class of hostile body is a 4xx that
says what is wrong, never another exception; and Powertools' validation reads bodies the same way."""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any

import pytest
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict

from encore.errors import EncoreError
from encore.http import MAX_BODY_BYTES, MAX_LISTED_ERRORS, error_body, json_body, read_bodies_strictly
from encore.http import register_error_handlers as register
from encore_local.apigw import LambdaContext, rest_event

pytestmark = pytest.mark.unit
JSON_TYPE = [("Content-Type", "application/json")]


def event(body: bytes | str | None, headers: list[tuple[str, str]] = JSON_TYPE) -> APIGatewayProxyEvent:
    return APIGatewayProxyEvent(rest_event("POST", "/v1/x", body=body, headers=headers))


def refusal(body: bytes | str | None, headers: list[tuple[str, str]] = JSON_TYPE) -> tuple[int, str]:
    with pytest.raises(EncoreError) as caught:
        json_body(event(body, headers), example='{"events": [ ... ]}')
    return caught.value.status, caught.value.reason


@pytest.mark.parametrize(
    ("body", "headers", "status", "fragment"),
    [
        (None, JSON_TYPE, 400, 'body is empty: send a JSON object ({"events": [ ... ]})'),
        ("[", JSON_TYPE, 400, "not valid JSON: Expecting value (line 1, column 2)"),
        ('{"events": [', JSON_TYPE, 400, "not valid JSON"),
        ("[" * 50_000 + "]" * 50_000, JSON_TYPE, 400, "nests arrays or objects too deeply"),
        ('{"a":' * 5000 + "1" + "}" * 5000, JSON_TYPE, 400, "nests arrays or objects too deeply"),
        ('{"n": ' + "9" * 5000 + "}", JSON_TYPE, 400, "a number in the body has 5000 characters"),
        ('{"n": 1' + "0" * 400 + ".5}", JSON_TYPE, 400, "has 403 characters"),
        ('{"n": NaN}', JSON_TYPE, 400, "NaN is not a JSON number"),
        ('{"n": -Infinity}', JSON_TYPE, 400, "-Infinity is not a JSON number"),
        ('{"s": "\\ud800"}', JSON_TYPE, 400, "lone UTF-16 surrogate"),
        ("[1, 2]", JSON_TYPE, 400, "must be a JSON object"),
        ('"events"', JSON_TYPE, 400, "not a string"),
        ("null", JSON_TYPE, 400, "not null"),
        (b"\xff\xfe{}", JSON_TYPE, 400, "not UTF-8 text (byte 0 is 0xff)"),
        (b'{"a": "caf\xe9"}', JSON_TYPE, 400, "byte 10 is 0xe9"),
        (gzip.compress(b'{"events": []}'), JSON_TYPE, 400, "gzip-compressed: send it with Content-Encoding: gzip"),
        ("\x1f\ufffd\x08\x00", JSON_TYPE, 400, "gzip-compressed"),  # the same bytes, mangled into text
        ('{"a": "' + "x" * MAX_BODY_BYTES + '"}', JSON_TYPE, 413, "over the 1024 KiB limit"),
        ("{}", [("Content-Type", "text/plain")], 415, "sent as 'text/plain': send JSON"),
        ("{}", [("Content-Type", "application/x-www-form-urlencoded")], 415, "Content-Type: application/json"),
        ("{}", [], 415, "without a Content-Type"),
        ("{}", [("Content-Type", "application/json; charset=latin-1")], 415, "charset latin-1: send it as UTF-8"),
    ],
)
def test_each_class_of_hostile_body_is_a_4xx_naming_what_is_wrong(
    body: Any, headers: list[tuple[str, str]], status: int, fragment: str
) -> None:
    got, reason = refusal(body, headers)
    assert got == status and fragment in reason, reason


@pytest.mark.parametrize(
    "content_type", ["application/json", "Application/JSON; charset=UTF-8", 'application/json;charset="utf-8"',
                     "application/merge-patch+json"],
)  # fmt: skip
def test_json_in_utf8_is_read_whatever_the_spelling_of_its_media_type(content_type: str) -> None:
    assert json_body(event('{"name": "Sigur Rós"}', [("Content-Type", content_type)])) == {"name": "Sigur Rós"}


def test_a_base64_body_is_decoded_and_one_that_is_not_base64_refused() -> None:
    raw = rest_event("POST", "/v1/x", body="{}", headers=JSON_TYPE)
    encoded = {**raw, "body": base64.b64encode('{"a": "é"}'.encode()).decode(), "isBase64Encoded": True}
    assert json_body(APIGatewayProxyEvent(encoded)) == {"a": "é"}
    with pytest.raises(EncoreError, match="not base64"):
        json_body(APIGatewayProxyEvent({**raw, "body": "%%%", "isBase64Encoded": True}))


# Anything a client can put in a body: JSON of any shape (with the numbers and strings Python's parser chokes on),
# and bytes that are not JSON at all.
_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
_json = st.recursive(_scalars, lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner), max_leaves=30)
_texts = _json.map(json.dumps) | st.text() | st.sampled_from(["[" * 3000, '{"a":' * 3000, "9" * 5000, "\\ud800"])
_bodies = _texts | st.binary() | _texts.map(lambda t: gzip.compress(t.encode()))
_types = st.sampled_from(["application/json", "text/plain", "", "application/json; charset=utf-16"])


@settings(max_examples=400, deadline=None)
@given(body=_bodies, content_type=_types)
def test_any_body_is_an_object_or_a_4xx_never_another_error(body: bytes | str, content_type: str) -> None:
    headers = [("Content-Type", content_type)] if content_type else []
    outcome: Any
    try:
        outcome = json_body(event(body, headers))
    except EncoreError as exc:
        outcome = exc
    if isinstance(outcome, EncoreError):
        assert 400 <= outcome.status < 500 and outcome.reason
    else:
        assert isinstance(outcome, dict)


class _Profile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    region: str


def _resolver() -> APIGatewayRestResolver:
    app = APIGatewayRestResolver(enable_validation=True)
    register(app)
    read_bodies_strictly(app)

    @app.put("/v1/x")
    def put(body: _Profile) -> dict[str, str]:
        return {"region": body.region}

    return app


@pytest.mark.parametrize(
    ("body", "content_type", "status", "fragment"),
    [
        ('{"region": "US"}', "application/json", 200, "US"),
        ('[{"region": "US"}]', "application/json", 400, "must be a JSON object, not an array"),  # Powertools: 200
        ("region=US", "application/x-www-form-urlencoded", 415, "send JSON"),  # Powertools: reads the form
        ('{"region": ' + "9" * 5000 + "}", "application/json", 400, "5000 characters"),  # Powertools: 500
        ("[" * 50_000, "application/json", 400, "too deeply"),  # Powertools: 500
        ('{"region": 1}', "application/json", 400, "region"),
    ],
)
def test_validated_routes_read_their_bodies_strictly(body: str, content_type: str, status: int, fragment: str) -> None:
    """``read_bodies_strictly`` replaces Powertools' own body reader (a private attribute of its resolver):
    this fails if a Powertools release renames it."""
    request = rest_event("PUT", "/v1/x", body=body, headers=[("Content-Type", content_type)])
    answer = _resolver().resolve(request, LambdaContext("api"))
    assert answer["statusCode"] == status and fragment in answer["body"], answer["body"]


def test_an_error_answer_lists_the_first_errors_and_counts_the_rest() -> None:
    errors = [{"field": f"events.{i}.played_ms", "reason": "bad"} for i in range(1500)]
    body = error_body("bad_request", "500 of the events are invalid", errors)
    assert len(body["errors"]) == MAX_LISTED_ERRORS and body["errors_not_listed"] == 1500 - MAX_LISTED_ERRORS
    assert len(json.dumps(body)) < 2000
    assert "errors_not_listed" not in error_body("bad_request", "one", errors[:3])
