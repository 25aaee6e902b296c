"""What the first `cdk deploy`, the first nightly run and the first `cdk destroy` need, read from the synthesized
assemblies (dev and prod): each test names the failure it prevents."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cdk_app.deploy_rules import Assembly, _states
from cdk_app.pipeline import GLUE_BUSY

pytestmark = pytest.mark.infra


def _function_role(a: Assembly, description_start: str) -> str:
    for fn in a.of_type("AWS::Lambda::Function").values():
        if str(fn["Properties"].get("Description", "")).startswith(description_start):
            return str(fn["Properties"]["Role"]["Fn::GetAtt"][0])
    raise AssertionError(f"no function described '{description_start}...'")


def _nightly(a: Assembly) -> dict[str, Any]:
    return next(d for d in a.state_machines().values() if _has(d, "train"))


def _has(definition: dict[str, Any], name: str) -> bool:
    return any(n == name for n, _ in _states(definition))


def test_shared_glue_jobs_wait_for_each_other_instead_of_failing(assemblies: dict[str, Assembly]) -> None:
    """The nightly run and the 15-minute refresh both run curate_events and build_charts (one run at a time)."""
    for definition in assemblies["prod"].state_machines().values():
        glue = [s for _, s in _states(definition) if "glue:startJobRun" in str(s.get("Resource"))]
        assert glue
        for state in glue:
            (retry,) = [r for r in state.get("Retry", []) if GLUE_BUSY in r["ErrorEquals"]]
            waited = sum(retry["IntervalSeconds"] * retry["BackoffRate"] ** i for i in range(retry["MaxAttempts"]))
            assert "JitterStrategy" not in retry  # the waits are as computed, not random fractions of them
            assert waited >= 45 * 60  # longer than a charts refresh or a nightly curate takes


def test_the_pipeline_loads_vectors_only_once_the_new_model_serves(assemblies: dict[str, Assembly]) -> None:
    """A failed update rolls the endpoint back to InService on the old configuration."""
    definition = _nightly(assemblies["dev"])
    states = dict(_states(definition))
    choice = states["endpoint in service?"]
    first = choice["Choices"][0]
    assert first["Next"] == "load_vectors"
    conditions = json.dumps(first)
    assert '"StringEquals": "InService"' in conditions
    assert '"Variable": "$.endpoint_status.config"' in conditions
    assert '"StringEqualsPath": "$.deploy.endpoint.endpoint_config"' in conditions
    rolled_back = states[choice["Choices"][1]["Next"]]
    assert rolled_back["Next"].startswith("notify")  # the operator hears of it
    describe = states["describe endpoint"]
    assert describe["ResultSelector"]["config.$"] == "$.EndpointConfigName"


@pytest.mark.parametrize("step", ["Put a promoted model", "Decide the online test"])
def test_prod_endpoint_autoscaling_is_allowed(assemblies: dict[str, Assembly], step: str) -> None:
    """Both steps that change the endpoint (deploy, and the judge ending a test) scale its variants."""
    a = assemblies["prod"]
    role = _function_role(a, step)
    arn = f"arn:<AWS::Partition>:{{}}:{a.region}:123456789012:{{}}"
    endpoint = "encore-prod-hybrid"
    linked = "sagemaker.application-autoscaling.amazonaws.com/AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
    for action, resource in (
        ("sagemaker:UpdateEndpointWeightsAndCapacities", arn.format("sagemaker", f"endpoint/{endpoint}")),
        *(
            (
                "cloudwatch:PutMetricAlarm",
                arn.format("cloudwatch", f"alarm:TargetTracking-endpoint/{endpoint}/variant/{v}-AlarmHigh-1"),
            )
            for v in ("champion", "challenger")
        ),
        ("iam:CreateServiceLinkedRole", f"arn:<AWS::Partition>:iam::123456789012:role/aws-service-role/{linked}"),
        ("application-autoscaling:RegisterScalableTarget", arn.format("application-autoscaling", "scalable-target/a")),
    ):
        assert a.allows(role, action, resource), action
    # and dev, serverless, has none of it
    dev = assemblies["dev"]
    assert not dev.allows(_function_role(dev, step), "iam:CreateServiceLinkedRole", "*")


def test_dev_tears_down_cleanly_and_prod_keeps_its_data(assemblies: dict[str, Assembly]) -> None:
    for stage, keeps in (("dev", False), ("prod", True)):
        a = assemblies[stage]
        buckets = a.of_type("AWS::S3::Bucket")
        site = {lid for lid in buckets if lid.startswith("SiteFiles")}  # no data: always emptied and deleted
        auto_delete = a.of_type("Custom::S3AutoDeleteObjects")
        assert len(auto_delete) == (len(site) if keeps else len(buckets)), stage
        for lid, bucket in buckets.items():
            assert bucket["DeletionPolicy"] == ("Retain" if keeps and lid not in site else "Delete")
        (group_id, group) = next(iter(a.of_type("AWS::SageMaker::ModelPackageGroup").items()))
        assert group["DeletionPolicy"] == ("Retain" if keeps else "Delete")
        (teardown,) = a.of_type("Custom::EncoreTeardown").values()
        assert group_id in teardown["DependsOn"]  # deleted first: the group must be empty by then
        role = _function_role(a, "On stack deletion")
        endpoint = f"arn:<AWS::Partition>:sagemaker:{a.region}:123456789012:endpoint/encore-{stage}-hybrid"
        assert a.allows(role, "sagemaker:DeleteEndpoint", endpoint)
        package = f"arn:<AWS::Partition>:sagemaker:{a.region}:123456789012:model-package/encore-{stage}-hybrid/3"
        assert a.allows(role, "sagemaker:DeleteModelPackage", package) is not keeps


def test_no_function_installs_or_shadows_the_sdk(assemblies: dict[str, Assembly]) -> None:
    """One dependency layer with Powertools in it; no AWS-managed layer whose files could overlap ours."""
    a = assemblies["dev"]
    for fn in a.of_type("AWS::Lambda::Function").values():
        if fn["Properties"].get("Runtime", "").startswith("python"):
            layers = fn["Properties"].get("Layers", [])
            if layers:
                assert all(isinstance(layer, dict) and "Ref" in layer for layer in layers)
    deps = next(a.layer_asset(lid) for lid in a.of_type("AWS::Lambda::LayerVersion") if "Dependencies" in lid)
    site = deps / "python"
    assert (site / "aws_lambda_powertools").is_dir() and (site / "pydantic").is_dir()
    assert not (site / "botocore").exists() and not (site / "bin").exists()
