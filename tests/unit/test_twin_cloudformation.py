"""What the twin does in AWS's place: dynamic references to secrets resolved as CloudFormation resolves them, a
response headers policy rendered as CloudFront writes its headers, and CloudWatch Logs filter patterns."""

from __future__ import annotations

import json
from typing import Any

import pytest

from encore.site import CONTENT_SECURITY_POLICY, HSTS_MAX_AGE_S, SECURITY_HEADERS
from encore_local.twin.logs import matcher
from encore_local.twin.provision import dynamic_references
from encore_local.twin.site import response_headers

pytestmark = pytest.mark.unit
ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:site-key-AbCdEf"


class Secrets:
    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.asked: list[str] = []

    def get_secret_value(self, SecretId: str) -> dict[str, Any]:  # noqa: N803 - boto3's name
        self.asked.append(SecretId)
        return {"SecretString": self.values[SecretId]}


def test_a_reference_by_name_by_arn_and_to_one_json_field() -> None:
    secrets = Secrets({"site-key": "k" * 40, ARN: json.dumps({"user": "u", "password": "p"})})
    client = lambda service: secrets  # noqa: E731
    assert dynamic_references("{{resolve:secretsmanager:site-key:SecretString:::}}", client) == "k" * 40
    text = f"user={{{{resolve:secretsmanager:{ARN}:SecretString:password::}}}};"
    assert dynamic_references(text, client) == "user=p;"
    assert dynamic_references("no reference here", client) == "no reference here"
    assert secrets.asked == ["site-key", ARN]


def test_a_policy_renders_to_the_sites_headers() -> None:
    policy = {
        "SecurityHeadersConfig": {
            "ContentSecurityPolicy": {"ContentSecurityPolicy": CONTENT_SECURITY_POLICY, "Override": True},
            "ContentTypeOptions": {"Override": True},
            "FrameOptions": {"FrameOption": "DENY", "Override": True},
            "ReferrerPolicy": {"ReferrerPolicy": "strict-origin-when-cross-origin", "Override": True},
            "StrictTransportSecurity": {"AccessControlMaxAgeSec": HSTS_MAX_AGE_S, "IncludeSubdomains": True,
                                        "Override": True},
        },
        "CustomHeadersConfig": {"Items": [{"Header": "X-Encore", "Value": "1", "Override": False}]},
    }  # fmt: skip
    assert response_headers(policy) == SECURITY_HEADERS | {"X-Encore": "1"}


def test_json_filter_patterns_match_as_cloudwatch_logs_does_and_others_are_refused() -> None:
    impression = matcher('{ $.kind = "impression" }')
    assert impression('{"kind": "impression", "x": 1}')
    assert not impression('{"kind": "other"}') and not impression("not json") and not impression("[1]")
    assert matcher('{ $.a.b = "1" && $.c = "x" }')('{"a": {"b": 1}, "c": "x"}')
    with pytest.raises(ValueError, match="JSON filter patterns"):
        matcher("ERROR")
    with pytest.raises(ValueError, match="equality conditions"):
        matcher("{ $.latency > 100 }")
