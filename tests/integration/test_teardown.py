"""`cdk destroy`'s helper: the custom resource deletes what the pipeline made, and always answers CloudFormation."""

from __future__ import annotations

import http.server
import json
import threading
import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest
from botocore.stub import Stubber

from encore.clients import get_client, reset_clients
from encore.config import EncoreConfig
from encore.endpoint import delete_model_packages
from encore.teardown import answer_cloudformation, tear_down
from encore_local.twin.services import TwinEndpoints

pytestmark = pytest.mark.integration


@pytest.fixture
def aws(twin: TwinEndpoints) -> EncoreConfig:
    """A stack of its own on the twin's moto (a project name no other test uses)."""
    reset_clients()
    return EncoreConfig.for_stage("dev", {"project": f"teardown{uuid.uuid4().hex[:8]}"})


def _pipeline_made(config: EncoreConfig, versions: int) -> Any:
    sm = get_client("sagemaker", config.region)
    name = config.resources.endpoint_name
    role = "arn:aws:iam::123456789012:role/exec"
    image = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/sklearn:1"
    sm.create_model_package_group(ModelPackageGroupName=config.resources.model_package_group)
    for v in range(versions):
        version = f"{name}-v{v}"
        sm.create_model(ModelName=version, ExecutionRoleArn=role, PrimaryContainer={"Image": image})
        sm.create_endpoint_config(
            EndpointConfigName=version,
            ProductionVariants=[
                {
                    "VariantName": "AllTraffic",
                    "ModelName": version,
                    "InitialInstanceCount": 1,
                    "InstanceType": "ml.c5.large",
                }
            ],
        )
        sm.create_model_package(
            ModelPackageGroupName=config.resources.model_package_group,
            InferenceSpecification={
                "Containers": [{"Image": image}],
                "SupportedContentTypes": ["application/json"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
        )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=f"{name}-v{versions - 1}")
    sm.create_model(ModelName=f"{name}2-other", ExecutionRoleArn=role, PrimaryContainer={"Image": image})
    return sm


def test_teardown_deletes_the_endpoint_and_every_version_of_it(aws: EncoreConfig) -> None:
    sm = _pipeline_made(aws, versions=3)
    deleted = tear_down(aws, delete_packages=False)
    assert f"endpoint {aws.resources.endpoint_name}" in deleted
    name = aws.resources.endpoint_name
    assert [e for e in sm.list_endpoints()["Endpoints"] if e["EndpointName"] == name] == []
    assert [c for c in sm.list_endpoint_configs()["EndpointConfigs"] if c["EndpointConfigName"].startswith(name)] == []
    # a model whose name merely starts like the endpoint's is someone else's
    assert [m["ModelName"] for m in sm.list_models()["Models"] if m["ModelName"].startswith(name)] == [f"{name}2-other"]
    # prod keeps the registry
    packages = sm.list_model_packages(ModelPackageGroupName=aws.resources.model_package_group)
    assert len(packages["ModelPackageSummaryList"]) == 3


def test_dev_teardown_empties_the_package_group(aws: EncoreConfig) -> None:
    """moto has no DeleteModelPackage: the calls are checked against the API's own model with a stub."""
    group = aws.resources.model_package_group
    arns = [f"arn:aws:sagemaker:eu-west-1:123456789012:model-package/{group}/{v}" for v in (1, 2, 3)]
    client = get_client("sagemaker", aws.region)
    with Stubber(client) as stub:
        summaries = [
            {"ModelPackageArn": a, "ModelPackageGroupName": group, "ModelPackageName": group,
             "CreationTime": datetime(2026, 12, 1, tzinfo=UTC), "ModelPackageStatus": "Completed"}
            for a in arns
        ]  # fmt: skip
        stub.add_response("list_model_packages", {"ModelPackageSummaryList": summaries[:2], "NextToken": "t"},
                          {"ModelPackageGroupName": group})  # fmt: skip
        stub.add_response("delete_model_package", {}, {"ModelPackageName": arns[0]})
        stub.add_response("delete_model_package", {}, {"ModelPackageName": arns[1]})
        stub.add_response("list_model_packages", {"ModelPackageSummaryList": summaries[2:]},
                          {"ModelPackageGroupName": group, "NextToken": "t"})  # fmt: skip
        stub.add_response("delete_model_package", {}, {"ModelPackageName": arns[2]})
        assert delete_model_packages(aws) == arns
        stub.assert_no_pending_responses()


def test_teardown_of_a_stack_whose_pipeline_never_ran(aws: EncoreConfig) -> None:
    assert tear_down(aws, delete_packages=False) == []


class _CloudFormation(http.server.BaseHTTPRequestHandler):
    answers: ClassVar[list[dict[str, Any]]] = []

    def do_PUT(self) -> None:
        self.answers.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_every_request_is_answered_to_cloudformation() -> None:
    server = http.server.HTTPServer(("127.0.0.1", 0), _CloudFormation)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        event = {
            "RequestType": "Delete",
            "ResponseURL": f"http://127.0.0.1:{server.server_port}/presigned",
            "StackId": "arn:aws:cloudformation:eu-west-1:123456789012:stack/Encore-dev/1",
            "RequestId": "r1",
            "LogicalResourceId": "ModelTeardownOnDelete",
            "PhysicalResourceId": "ModelTeardownOnDelete-teardown",
        }
        answer_cloudformation(event, "FAILED", "AccessDenied: not allowed", "2026/12/01/[$LATEST]abc")
    finally:
        server.shutdown()
    (answer,) = _CloudFormation.answers
    assert answer["Status"] == "FAILED" and "AccessDenied" in answer["Reason"] and "[$LATEST]abc" in answer["Reason"]
    assert answer["PhysicalResourceId"] == "ModelTeardownOnDelete-teardown" and answer["RequestId"] == "r1"
