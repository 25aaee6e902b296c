"""What ``cdk destroy`` cannot delete by itself: the pipeline-made endpoint (with its configurations, models and
autoscaling target) and, where the stage does not keep data, the model packages that block deleting their group.

Run by a CloudFormation custom resource on Delete only (Create and Update do nothing); every call answers
CloudFormation, so a stack never waits an hour on a silent handler.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from botocore.exceptions import ClientError

from encore.clients import get_client
from encore.config import EncoreConfig
from encore.experiment import CHALLENGER, CHAMPION


def _missing(exc: ClientError) -> bool:
    """SageMaker says a thing is not there with a ValidationException ("Could not find ..."), Application
    Auto Scaling with ObjectNotFoundException (moto's with a ValidationException, "No scalable target ...")."""
    error = exc.response["Error"]
    message = error.get("Message", "").lower()
    return error["Code"] == "ObjectNotFoundException" or any(
        words in message for words in ("could not find", "not found", "does not exist", "no scalable target")
    )


def delete_endpoint(config: EncoreConfig) -> list[str]:
    """Delete the endpoint, its autoscaling target, and every endpoint configuration and model named after it."""
    sm = get_client("sagemaker", config.region)
    name = config.resources.endpoint_name
    deleted = []
    for variant in (CHAMPION, CHALLENGER):
        try:
            get_client("application-autoscaling", config.region).deregister_scalable_target(
                ServiceNamespace="sagemaker",
                ResourceId=f"endpoint/{name}/variant/{variant}",
                ScalableDimension="sagemaker:variant:DesiredInstanceCount",
            )
            deleted.append(f"scalable target of {name}'s {variant}")
        except ClientError as exc:
            if not _missing(exc):
                raise
    try:
        sm.delete_endpoint(EndpointName=name)
        deleted.append(f"endpoint {name}")
    except ClientError as exc:
        if not _missing(exc):
            raise
    # NameContains narrows the listing; the prefix test is what decides (names are "<endpoint>-<version>").
    for page in sm.get_paginator("list_endpoint_configs").paginate(NameContains=f"{name}-"):
        for config_name in (c["EndpointConfigName"] for c in page["EndpointConfigs"]):
            if config_name.startswith(f"{name}-"):
                sm.delete_endpoint_config(EndpointConfigName=config_name)
                deleted.append(f"endpoint config {config_name}")
    for page in sm.get_paginator("list_models").paginate(NameContains=f"{name}-"):
        for model_name in (m["ModelName"] for m in page["Models"]):
            if model_name.startswith(f"{name}-"):
                sm.delete_model(ModelName=model_name)
                deleted.append(f"model {model_name}")
    return deleted


def delete_model_packages(config: EncoreConfig) -> list[str]:
    """Delete every version in the model package group (CloudFormation cannot delete a group that has any)."""
    sm = get_client("sagemaker", config.region)
    deleted = []
    group = config.resources.model_package_group
    try:
        for page in sm.get_paginator("list_model_packages").paginate(ModelPackageGroupName=group):
            for item in page["ModelPackageSummaryList"]:
                sm.delete_model_package(ModelPackageName=item["ModelPackageArn"])
                deleted.append(item["ModelPackageArn"])
    except ClientError as exc:
        if not _missing(exc):
            raise
    return deleted


def tear_down(config: EncoreConfig, delete_packages: bool) -> list[str]:
    deleted = delete_endpoint(config)
    if delete_packages:
        deleted += delete_model_packages(config)
    return deleted


def answer_cloudformation(event: dict[str, Any], status: str, reason: str, log_stream: str) -> None:
    """PUT the custom resource's result to the pre-signed URL CloudFormation gave."""
    body = json.dumps(
        {
            "Status": status,
            "Reason": f"{reason[:900]} (log stream {log_stream})",
            "PhysicalResourceId": event.get("PhysicalResourceId") or f"{event['LogicalResourceId']}-teardown",
            "StackId": event["StackId"],
            "RequestId": event["RequestId"],
            "LogicalResourceId": event["LogicalResourceId"],
        }
    ).encode()
    url = event["ResponseURL"]
    if not url.startswith(("https://", "http://127.0.0.1")):  # CloudFormation's pre-signed S3 URL (or a test's)
        raise ValueError(f"not a CloudFormation response URL: {url[:80]}")
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
        url, data=body, method="PUT", headers={"Content-Type": "", "Content-Length": str(len(body))}
    )
    with urllib.request.urlopen(request, timeout=30):  # noqa: S310 - the scheme is checked above
        pass
