"""The client factory: cached, reset for tests, and pointed by the standard endpoint variables."""

from __future__ import annotations

import pytest

from encore.clients import get_client, reset_clients

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    reset_clients()


def test_clients_are_cached_per_service_and_reset() -> None:
    a = get_client("s3")
    assert get_client("s3") is a
    assert get_client("dynamodb") is not a
    reset_clients()
    assert get_client("s3") is not a


def test_default_endpoint_is_aws() -> None:
    assert get_client("dynamodb").meta.endpoint_url == "https://dynamodb.eu-west-1.amazonaws.com"


def test_global_endpoint_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    assert get_client("s3").meta.endpoint_url == "http://127.0.0.1:4566"
    assert get_client("firehose").meta.endpoint_url == "http://127.0.0.1:4566"


def test_per_service_endpoint_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", "http://127.0.0.1:8080")
    assert get_client("sagemaker-runtime").meta.endpoint_url == "http://127.0.0.1:8080"
    assert get_client("dynamodb").meta.endpoint_url == "http://127.0.0.1:4566"


def test_read_timeout_override_is_its_own_client() -> None:
    fast = get_client("sagemaker-runtime", read_timeout=0.5)
    assert fast.meta.config.read_timeout == 0.5
    assert get_client("sagemaker-runtime").meta.config.read_timeout == 5
