"""The serving endpoint's SageMaker control plane: its models, endpoint configurations, the endpoint itself and
its autoscaling, made by the pipeline's deploy and judge steps and deleted by the stack's teardown.

SageMaker answers "not there" and "already there" with ClientErrors; this module is the one place that reads
them, so the steps above it see only outcomes (and ``EndpointBusy`` while an update is under way).
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from encore.clients import get_client
from encore.config import EncoreConfig, EndpointSettings
from encore.experiment import CHALLENGER, CHAMPION


class EndpointBusy(Exception):
    """The endpoint is being created or updated: the pipeline waits and tries again (its Retry names this)."""


BUSY = ("Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting")


def model_name(endpoint: str, version: str) -> str:
    return f"{endpoint}-{version}"[:63].rstrip("-")


def create_model(config: EncoreConfig, name: str, image: str, model_data: str, role_arn: str) -> None:
    """The SageMaker model serving ``model_data`` with Encore's inference code (once: a model of that name is the
    same artifact)."""
    sm = get_client("sagemaker", config.region)
    try:
        sm.describe_model(ModelName=name)
        return  # deployed before (the champion again, or a retried step): the same artifact under the same name
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ValidationException":
            raise
    sm.create_model(
        ModelName=name,
        ExecutionRoleArn=role_arn,
        PrimaryContainer={
            "Image": image,
            "ModelDataUrl": model_data,
            "Environment": {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code"},
        },
    )


def _variant(name: str, model: str, weight: float, settings: EndpointSettings) -> dict[str, Any]:
    variant: dict[str, Any] = {"VariantName": name, "ModelName": model, "InitialVariantWeight": weight}
    if settings.kind == "serverless":
        variant["ServerlessConfig"] = {
            "MemorySizeInMB": settings.serverless_memory_mb,
            "MaxConcurrency": settings.serverless_max_concurrency,
        }
    else:
        variant |= {"InstanceType": settings.instance_type, "InitialInstanceCount": settings.instance_min}
    return variant


def _autoscale(config: EncoreConfig, settings: EndpointSettings, variants: list[str]) -> None:
    scaling = get_client("application-autoscaling", config.region)
    endpoint = config.resources.endpoint_name
    for variant in variants:
        resource = f"endpoint/{endpoint}/variant/{variant}"
        scaling.register_scalable_target(
            ServiceNamespace="sagemaker",
            ResourceId=resource,
            ScalableDimension="sagemaker:variant:DesiredInstanceCount",
            MinCapacity=settings.instance_min,
            MaxCapacity=settings.instance_max,
        )
        scaling.put_scaling_policy(
            PolicyName=f"{endpoint}-{variant}-invocations",
            ServiceNamespace="sagemaker",
            ResourceId=resource,
            ScalableDimension="sagemaker:variant:DesiredInstanceCount",
            PolicyType="TargetTrackingScaling",
            TargetTrackingScalingPolicyConfiguration={
                "TargetValue": float(settings.invocations_per_instance),
                "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
            },
        )


def point_endpoint(
    config: EncoreConfig, settings: EndpointSettings, config_name: str, variants: list[tuple[str, str, float]]
) -> dict[str, str]:
    """Serve ``variants`` (name, model, weight) under the endpoint configuration ``config_name`` (made once, then
    reused), creating the endpoint or updating it. Raises ``EndpointBusy`` while an update is still under way."""
    sm = get_client("sagemaker", config.region)
    endpoint = config.resources.endpoint_name
    try:
        status = sm.describe_endpoint(EndpointName=endpoint)["EndpointStatus"]
    except ClientError as exc:
        if "Could not find" not in str(exc) and exc.response["Error"]["Code"] != "ValidationException":
            raise
        status = None
    if status in BUSY:
        raise EndpointBusy(f"endpoint {endpoint} is {status}")
    try:
        sm.describe_endpoint_config(EndpointConfigName=config_name)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ValidationException":
            raise
        sm.create_endpoint_config(
            EndpointConfigName=config_name,
            ProductionVariants=[_variant(name, model, weight, settings) for name, model, weight in variants],
        )
    if status is None:
        sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=config_name)
        action = "created"
    else:
        sm.update_endpoint(EndpointName=endpoint, EndpointConfigName=config_name)
        action = "updated"
    if settings.kind == "instance":
        _autoscale(config, settings, [name for name, _, _ in variants])
    return {"endpoint": endpoint, "endpoint_config": config_name, "action": action}


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
