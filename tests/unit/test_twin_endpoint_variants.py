"""The twin's SageMaker endpoint routes among an endpoint's production variants as SageMaker does: to the variant
``TargetVariant`` names (a ValidationError for one the endpoint lacks), else at random by variant weight, and says
which answered (``InvokedProductionVariant``). Artifacts are stood in for by a fake model naming its model data, so
what is tested is the routing; the SageMaker API is moto's, boto3's sagemaker-runtime reaches the server the way the
twin points it there (``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME``)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from encore.clients import get_client, reset_clients
from encore_local.twin import sagemaker
from encore_local.twin.sagemaker import EndpointServer

pytestmark = pytest.mark.unit
REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/endpoint"


class FakeModel:
    """Stands in for ``LoadedModel``: answers with the artifact it was loaded from."""

    def __init__(self, model_data: str) -> None:
        self.model_data = model_data

    def invoke(self, body: bytes, content_type: str, accept: str) -> str:
        return json.dumps({"model_data": self.model_data})


@pytest.fixture
def twin(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, EndpointServer]]:
    """moto's SageMaker API and the endpoint server; yields (the sagemaker client, the server)."""
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SAGEMAKER", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setattr(sagemaker, "LoadedModel", FakeModel)
    with mock_aws():  # requests to the server's loopback URL match no AWS service and pass through to it
        server = EndpointServer()
        monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", server.start())
        reset_clients()
        server.random.seed(7)
        try:
            yield boto3.client("sagemaker", region_name=REGION), server
        finally:
            server.stop()
    reset_clients()


def deploy(sm: Any, endpoint: str, config: str, variants: dict[str, tuple[str, float | None]],
           *, create: bool = True) -> None:  # fmt: skip
    """An endpoint configuration of ``variants`` (name -> (model data URL, weight or None for the default)), each
    with a model of its own, and the endpoint on it."""
    production = []
    for name, (url, weight) in variants.items():
        sm.create_model(ModelName=f"{config}-{name}", ExecutionRoleArn=ROLE,
                        PrimaryContainer={"Image": "sklearn:1.2-1", "ModelDataUrl": url})  # fmt: skip
        variant = {"VariantName": name, "ModelName": f"{config}-{name}", "InstanceType": "ml.m5.large",
                   "InitialInstanceCount": 1}  # fmt: skip
        production.append(variant if weight is None else variant | {"InitialVariantWeight": weight})
    sm.create_endpoint_config(EndpointConfigName=config, ProductionVariants=production)
    if create:
        sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=config)


def invoke(endpoint: str, target: str | None = None) -> tuple[str, str]:
    """(InvokedProductionVariant, the model data that answered), through boto3."""
    extra = {} if target is None else {"TargetVariant": target}
    out = get_client("sagemaker-runtime").invoke_endpoint(EndpointName=endpoint, Body=b"{}",
                                                          ContentType="application/json", **extra)  # fmt: skip
    return out["InvokedProductionVariant"], json.loads(out["Body"].read())["model_data"]


def test_a_target_variant_is_answered_by_that_variant_even_at_weight_zero(twin: tuple[Any, EndpointServer]) -> None:
    sm, server = twin
    deploy(sm, "ep", "ep-1", {"blue": ("s3://m/blue.tar.gz", None), "green": ("s3://m/green.tar.gz", 0.0)})
    assert [(v.name, v.weight) for v in server.variants("ep")] == [("blue", 1.0), ("green", 0.0)]  # default 1.0
    assert invoke("ep", "green") == ("green", "s3://m/green.tar.gz")
    assert invoke("ep", "blue") == ("blue", "s3://m/blue.tar.gz")
    assert {invoke("ep") for _ in range(20)} == {("blue", "s3://m/blue.tar.gz")}  # weight 0: targeted only


def test_a_target_variant_the_endpoint_lacks_is_a_validation_error(twin: tuple[Any, EndpointServer]) -> None:
    sm, _ = twin
    deploy(sm, "ep", "ep-1", {"blue": ("s3://m/blue.tar.gz", 1.0)})
    with pytest.raises(ClientError) as caught:
        invoke("ep", "purple")
    error = caught.value.response
    assert error["Error"]["Code"] == "ValidationError"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "purple" in error["Error"]["Message"] and "ep" in error["Error"]["Message"]


def test_untargeted_traffic_is_split_by_variant_weight(twin: tuple[Any, EndpointServer]) -> None:
    sm, _ = twin
    deploy(sm, "ep", "ep-1", {"main": ("s3://m/main.tar.gz", 0.9), "canary": ("s3://m/canary.tar.gz", 0.1)})
    answers = [invoke("ep") for _ in range(2000)]
    counts = Counter(variant for variant, _ in answers)
    assert counts.keys() == {"main", "canary"}
    assert 140 <= counts["canary"] <= 260  # expected 200, sd 13.4: the bounds are 4.5 sd
    assert all(url == f"s3://m/{variant}.tar.gz" for variant, url in answers)  # each variant its own model


def test_an_update_to_a_single_variant_drops_the_old_variants_model(
    twin: tuple[Any, EndpointServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    sm, server = twin
    monkeypatch.setattr(sagemaker, "RESOLVE_TTL_S", 0.0)  # every invocation sees the current configuration
    deploy(sm, "ep", "ep-1", {"blue": ("s3://m/blue-1.tar.gz", 1.0), "green": ("s3://m/green-1.tar.gz", 1.0)})
    for variant in ("blue", "green"):
        invoke("ep", variant)
    assert set(server._models) == {("ep", "blue"), ("ep", "green")}
    # moto has no UpdateEndpoint: the endpoint is made again on the new configuration, which to the server is the
    # same thing (the endpoint's configuration changed).
    deploy(sm, "ep", "ep-2", {"blue": ("s3://m/blue-2.tar.gz", 1.0)}, create=False)
    sm.delete_endpoint(EndpointName="ep")
    sm.create_endpoint(EndpointName="ep", EndpointConfigName="ep-2")
    assert {invoke("ep") for _ in range(5)} == {("blue", "s3://m/blue-2.tar.gz")}  # reloaded: its model changed
    assert list(server._models) == [("ep", "blue")] and server._models["ep", "blue"].model_data.endswith("2.tar.gz")
    with pytest.raises(ClientError, match="ValidationError"):
        invoke("ep", "green")
