"""Generated requests against the OpenAPI document, through the twin's HTTP API: valid ones and invalid ones
for every operation. No answer may be a 5xx, and every answer must match what the document declares (status
code, content type, body schema)."""

from __future__ import annotations

import contextlib
from collections import Counter
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from support import GENERATED_PER_OPERATION, KEY

pytestmark = [pytest.mark.reliability, pytest.mark.slow]
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def _exercise(operation: Any, mode: GenerationMode, url: str, session: requests.Session, sent: Counter[str]) -> None:
    """Generated cases of one operation in one mode, each sent and its answer checked; stops at the first failure."""

    @settings(max_examples=GENERATED_PER_OPERATION, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(case=operation.as_strategy(generation_mode=mode))
    def call(case: Any) -> None:
        response = case.call(base_url=url, session=session, headers=KEY)
        sent[f"{operation.label} ({mode.value})"] += 1
        case.validate_response(response, checks=CHECKS)

    call()


def test_generated_requests_get_no_5xx_and_answers_match_the_document(http_api: dict[str, Any]) -> None:
    url = http_api["url"]
    document = requests.get(f"{url}/v1/openapi.json", headers=KEY, timeout=30).json()
    schema = schemathesis.openapi.from_dict(document)
    sent: Counter[str] = Counter()
    session = requests.Session()
    for found in schema.get_all_operations():
        _exercise(found.ok(), GenerationMode.POSITIVE, url, session, sent)
        with contextlib.suppress(Unsatisfiable):  # an operation without inputs has nothing to send wrong
            _exercise(found.ok(), GenerationMode.NEGATIVE, url, session, sent)
    print(f"{sum(sent.values())} generated requests: {dict(sent)}")
    assert sum(sent.values()) >= 1000
