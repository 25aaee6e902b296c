"""The promotion gate and the deploy step: promote a candidate only if it beats the serving model and
popularity on NDCG@10, register it, and point the endpoint at it.

State in the lake: ``models/serving.json`` (what the endpoint serves, with its report) and
``models/decisions/<version>.json`` (every decision with both reports).
"""

from __future__ import annotations

import json
import tarfile
import time
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlparse

from botocore.exceptions import ClientError

from encore.clients import get_client
from encore.config import EncoreConfig, EndpointSettings

METRIC = "ndcg@10"
SERVING_KEY = "serving.json"


def _s3_url(url: str) -> tuple[str, str]:
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"not an s3:// URL: {url}")
    return parsed.netloc, parsed.path.lstrip("/")


def read_report(model_data: str, region: str | None = None) -> dict[str, Any]:
    """``evaluation.json`` and ``meta.json`` from inside model.tar.gz, streamed (the arrays are not kept)."""
    bucket, key = _s3_url(model_data)
    body = get_client("s3", region).get_object(Bucket=bucket, Key=key)["Body"]
    found: dict[str, Any] = {}
    with tarfile.open(fileobj=body, mode="r|gz") as tar:
        for member in tar:
            name = member.name.removeprefix("./")
            if name in ("evaluation.json", "meta.json"):
                f = tar.extractfile(member)
                if f is not None:
                    found[name] = json.loads(f.read())
            if len(found) == 2:
                break
    if "evaluation.json" not in found:
        raise ValueError(f"{model_data} has no evaluation.json")
    return {"report": found["evaluation.json"], "meta": found.get("meta.json", {})}


@dataclass
class Decision:
    promote: bool
    reason: str
    version: str
    model_data: str
    image: str
    candidate_ndcg: float
    popularity_ndcg: float
    serving_ndcg: float | None
    serving_version: str | None
    model_package_arn: str | None = None


def decide(candidate: dict[str, Any], serving: dict[str, Any] | None, min_gain: float = 0.0) -> tuple[bool, str]:
    """Promote when the candidate's served ranking beats popularity and each of its own sources alone on the same
    holdout (the report's ``single_sources``: a ranking stage that loses to one of its inputs is not worth
    serving), and the serving model's NDCG@10 (times ``1 + min_gain``)."""
    home = candidate["home"]
    cand, pop = home["hybrid"].get(METRIC, 0.0), home["popularity"].get(METRIC, 0.0)
    if cand <= pop:
        return False, f"{METRIC} {cand:.4f} does not beat popularity ({pop:.4f})"
    for source in candidate.get("single_sources", []):
        alone = home.get(source, {}).get(METRIC, 0.0)
        if source != "popularity" and cand <= alone:
            return False, f"{METRIC} {cand:.4f} does not beat its own source {source} alone ({alone:.4f})"
    if serving is None:
        return True, f"{METRIC} {cand:.4f} beats popularity ({pop:.4f}); nothing is serving yet"
    current = serving["metrics"].get(METRIC, 0.0)
    if cand <= current * (1 + min_gain):
        return False, f"{METRIC} {cand:.4f} does not beat the serving model's {current:.4f}"
    return True, f"{METRIC} {cand:.4f} beats popularity ({pop:.4f}) and the serving model ({current:.4f})"


class ModelRegistry:
    """The lake's record of what serves, and SageMaker's model package group."""

    def __init__(self, config: EncoreConfig) -> None:
        self.config = config
        self.bucket = config.resources.lake_bucket
        self.prefix = config.lake.models

    def serving(self) -> dict[str, Any] | None:
        try:
            body = get_client("s3", self.config.region).get_object(Bucket=self.bucket, Key=self.prefix + SERVING_KEY)
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("NoSuchKey", "404"):
                return None
            raise
        return json.loads(body["Body"].read())  # type: ignore[no-any-return]

    def record(self, decision: Decision, candidate: dict[str, Any], serving: dict[str, Any] | None) -> None:
        body = {
            "decision": asdict(decision),
            "candidate": candidate,
            "serving": serving,
            "decided_at": int(time.time()),
        }
        get_client("s3", self.config.region).put_object(
            Bucket=self.bucket, Key=f"{self.prefix}decisions/{decision.version}.json", Body=json.dumps(body, indent=2)
        )

    def set_serving(self, decision: dict[str, Any], metrics: dict[str, Any]) -> None:
        record = {
            "version": decision["version"],
            "model_data": decision["model_data"],
            "metrics": metrics,
            "promoted_at": int(time.time()),
        }
        get_client("s3", self.config.region).put_object(
            Bucket=self.bucket, Key=self.prefix + SERVING_KEY, Body=json.dumps(record, indent=2)
        )

    def register(self, decision: Decision) -> str:
        resp = get_client("sagemaker", self.config.region).create_model_package(
            ModelPackageGroupName=self.config.resources.model_package_group,
            ModelPackageDescription=decision.reason[:1000],
            ModelApprovalStatus="Approved",
            InferenceSpecification={
                "Containers": [{"Image": decision.image, "ModelDataUrl": decision.model_data}],
                "SupportedContentTypes": ["application/json"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
            CustomerMetadataProperties={"version": decision.version, METRIC: f"{decision.candidate_ndcg:.6f}"},
        )
        return str(resp["ModelPackageArn"])


def gate(event: dict[str, Any], config: EncoreConfig, image: str, min_gain: float = 0.0) -> dict[str, Any]:
    """The pipeline's gate step: ``event`` is the training step's ``{model_data, training_job}``."""
    found = read_report(event["model_data"], config.region)
    candidate, meta = found["report"], found["meta"]
    registry = ModelRegistry(config)
    serving = registry.serving()
    promote, reason = decide(candidate, serving, min_gain)
    home = candidate["home"]
    decision = Decision(
        promote=promote,
        reason=reason,
        version=str(meta.get("version") or candidate.get("version") or event.get("training_job")),
        model_data=event["model_data"],
        image=image,
        candidate_ndcg=home["hybrid"].get(METRIC, 0.0),
        popularity_ndcg=home["popularity"].get(METRIC, 0.0),
        serving_ndcg=serving["metrics"].get(METRIC) if serving else None,
        serving_version=serving["version"] if serving else None,
    )
    if promote:
        decision.model_package_arn = registry.register(decision)
    registry.record(decision, candidate, serving)
    return {**asdict(decision), "metrics": home["hybrid"]}


def deploy(decision: dict[str, Any], config: EncoreConfig, settings: EndpointSettings, role_arn: str) -> dict[str, str]:
    """Create the version's model and endpoint configuration, then create or update the endpoint."""
    sm = get_client("sagemaker", config.region)
    endpoint = config.resources.endpoint_name
    name = f"{endpoint}-{decision['version']}"[:63].rstrip("-")
    sm.create_model(
        ModelName=name,
        ExecutionRoleArn=role_arn,
        PrimaryContainer={
            "Image": decision["image"],
            "ModelDataUrl": decision["model_data"],
            "Environment": {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code"},
        },
    )
    variant: dict[str, Any] = {"VariantName": "AllTraffic", "ModelName": name}
    if settings.kind == "serverless":
        variant["ServerlessConfig"] = {
            "MemorySizeInMB": settings.serverless_memory_mb,
            "MaxConcurrency": settings.serverless_max_concurrency,
        }
    else:
        variant |= {"InstanceType": settings.instance_type, "InitialInstanceCount": settings.instance_min}
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant])
    try:
        sm.describe_endpoint(EndpointName=endpoint)
        sm.update_endpoint(EndpointName=endpoint, EndpointConfigName=name)
        action = "updated"
    except ClientError as exc:
        if "Could not find" not in str(exc) and exc.response["Error"]["Code"] != "ValidationException":
            raise
        sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=name)
        action = "created"
    if settings.kind == "instance":
        scaling = get_client("application-autoscaling", config.region)
        resource = f"endpoint/{endpoint}/variant/AllTraffic"
        scaling.register_scalable_target(
            ServiceNamespace="sagemaker",
            ResourceId=resource,
            ScalableDimension="sagemaker:variant:DesiredInstanceCount",
            MinCapacity=settings.instance_min,
            MaxCapacity=settings.instance_max,
        )
        scaling.put_scaling_policy(
            PolicyName=f"{endpoint}-invocations",
            ServiceNamespace="sagemaker",
            ResourceId=resource,
            ScalableDimension="sagemaker:variant:DesiredInstanceCount",
            PolicyType="TargetTrackingScaling",
            TargetTrackingScalingPolicyConfiguration={
                "TargetValue": float(settings.invocations_per_instance),
                "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
            },
        )
    ModelRegistry(config).set_serving(decision, decision.get("metrics", {}))
    return {"endpoint": endpoint, "endpoint_config": name, "model": name, "action": action}
