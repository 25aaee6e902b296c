"""The cdk-nag AwsSolutions findings this stack accepts: each on the one resource it concerns, with its reason.

Nothing is acknowledged rule-wide. IAM5 (wildcards) is acknowledged per policy and per wildcard, and only
where the tables below give that wildcard a reason; a wildcard nobody explained still fails synthesis.
"""

from __future__ import annotations

import re
from typing import Any

from aws_cdk import Acknowledgment, Stack, Validations
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_iam as iam
from constructs import IConstruct

# Wildcard actions written by CDK's grant_* methods, each confined to the resources of its statement.
GRANT_WILDCARDS: dict[str, str] = {
    "s3:GetObject*": "CDK grant: GetObject, GetObjectVersion, GetObjectAcl/Tagging on the named bucket only",
    "s3:GetBucket*": "CDK grant: bucket metadata reads (location, versioning) of the named bucket only",
    "s3:List*": "CDK grant: listing the named bucket only (prefix scans of the lake)",
    "s3:DeleteObject*": "CDK grant: overwriting a partition deletes its old objects, named bucket only",
    "s3:Abort*": "CDK grant: abort multipart uploads to the named bucket only",
    "kms:GenerateDataKey*": "CDK grant: GenerateDataKey(WithoutPlaintext) on the one data key",
    "kms:ReEncrypt*": "CDK grant: ReEncryptFrom/To on the one data key (S3 bucket keys)",
    "dynamodb:BatchGet*": "CDK grant: BatchGetItem on the named table only",
    "dynamodb:BatchWrite*": "CDK grant: BatchWriteItem on the named table only",
    "dynamodb:Get*": "CDK grant: GetItem and stream reads on the named table only",
    "dynamodb:Query*": "CDK grant: Query on the named table only",
    "dynamodb:Scan*": "CDK grant: Scan on the named table only",
    "dynamodb:Describe*": "CDK grant: DescribeTable on the named table only",
    "dynamodb:List*": "CDK grant: ListStreams on the named table only",
}

# Actions that AWS defines without a resource type, so their only possible resource is "*".
STAR_RESOURCE_ACTIONS: dict[str, str] = {
    "xray:PutTraceSegments": "X-Ray has no resource type for trace submission (active tracing)",
    "xray:PutTelemetryRecords": "X-Ray has no resource type for telemetry (active tracing)",
    "xray:GetSamplingRules": "X-Ray has no resource type for sampling rules (state machine tracing)",
    "xray:GetSamplingTargets": "X-Ray has no resource type for sampling targets (state machine tracing)",
    "sagemaker:ListTags": "CDK's training task reads tags of the job it created, whose name exists only at run time",
    "cloudwatch:PutMetricData": "no resource type; the statement is limited to one namespace by condition",
    "ecr:GetAuthorizationToken": "no resource type; the image pull itself is limited to one repository",
    "ec2:CreateNetworkInterface": "Lambda in a VPC: ENI management has no narrower resource at creation",
    "ec2:DescribeNetworkInterfaces": "Lambda in a VPC: Describe* has no resource type",
    "ec2:DeleteNetworkInterface": "Lambda in a VPC: the function's own ENIs, named only at run time",
    "ec2:AssignPrivateIpAddresses": "Lambda in a VPC: the function's own ENIs, named only at run time",
    "ec2:UnassignPrivateIpAddresses": "Lambda in a VPC: the function's own ENIs, named only at run time",
    "application-autoscaling:DescribeScalableTargets": "Describe* of Application Auto Scaling has no resource type",
    "sagemaker:AddTags": "CDK's training task tags the job it creates; the job name is known only at run time",
    "logs:CreateLogDelivery": "Step Functions logging: log-delivery APIs have no resource type",
    "logs:GetLogDelivery": "Step Functions logging: log-delivery APIs have no resource type",
    "logs:UpdateLogDelivery": "Step Functions logging: log-delivery APIs have no resource type",
    "logs:DeleteLogDelivery": "Step Functions logging: log-delivery APIs have no resource type",
    "logs:ListLogDeliveries": "Step Functions logging: log-delivery APIs have no resource type",
    "logs:PutResourcePolicy": "Step Functions logging: the account's log resource policy has no narrower ARN",
    "logs:DescribeResourcePolicies": "Step Functions logging: Describe* has no resource type",
    "logs:DescribeLogGroups": "Step Functions logging: Describe* has no resource type",
}

# Resource wildcards (nag's evidence, as a pattern) and why each is as narrow as it can be.
RESOURCE_WILDCARDS: tuple[tuple[str, str], ...] = (
    (r"<DataLake\w+\.Arn>/([\w-]+/)*\*", "objects of the lake bucket, under the one prefix named where there is one"),
    (
        r"arn:(<AWS::Partition>|aws[a-z-]*):s3:::cdk-[a-z0-9]+-assets-(<AWS::AccountId>|\d{12})-[a-z0-9-]+/\*",
        "CDK's asset bucket: the job scripts, shared library and training source are objects there",
    ),
    (r".*:log-group:/aws/sagemaker/\*", "SageMaker writes to log groups it names per job and endpoint"),
    (r".*:log-group:/aws-glue/\*", "Glue writes to its fixed /aws-glue/ log groups"),
    (r".*:glue:.*:table/encore_\w+/\*", "tables of the Encore database only"),
    (r".*:model-package/encore-[\w-]+/\*", "versions in the Encore model package group only"),
    (r".*:model/encore-[\w-]+-\*", "models named after the endpoint, one per promoted version"),
    (r".*:endpoint-config/encore-[\w-]+-\*", "endpoint configurations named after the endpoint, one per version"),
    (r".*:training-job/\*", "training jobs are named per pipeline execution"),
    (r".*:application-autoscaling:.*:scalable-target/\*", "scalable target ids are assigned by AWS at registration"),
    (r"<Model\w+Function\w+\.Arn>:\*", "Step Functions invokes the pipeline function's versions and aliases"),
)

PUBLIC_METHOD_REASON = "health check: a liveness probe answers without credentials and reveals nothing"
KEYED_METHOD_REASON = (
    "clients are the music service's backends, authenticated by API key and usage plan; a Cognito JWT "
    "authorizer is added on top by setting deploy.cognito_auth"
)


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    Validations.of(scope).acknowledge(Acknowledgment(id=f"AwsSolutions::AwsSolutions-{rule}", reason=reason))


def _flatten(value: Any) -> str:
    """A resolved CloudFormation value as nag prints it (``<Logical.Attr>``, ``<AWS::Partition>``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        if "Ref" in value:
            return f"<{value['Ref']}>"
        if "Fn::GetAtt" in value:
            return f"<{'.'.join(value['Fn::GetAtt'])}>"
        if "Fn::Sub" in value and isinstance(value["Fn::Sub"], str):
            return re.sub(r"\$\{([^}]+)\}", r"<\1>", value["Fn::Sub"])
        if "Fn::Join" in value:
            sep, parts = value["Fn::Join"]
            return str(sep).join(_flatten(p) for p in parts)
    return str(value)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def wildcard_reasons(statements: list[dict[str, Any]]) -> tuple[dict[str, str], list[str]]:
    """For a policy's statements: the IAM5 evidence with its reason, and wildcards that have none."""
    reasons: dict[str, str] = {}
    unexplained: list[str] = []
    for st in statements:
        actions = [str(a) for a in _as_list(st.get("Action", []))]
        for action in actions:
            if "*" in action:
                if action in GRANT_WILDCARDS:
                    reasons[f"Action::{action}"] = GRANT_WILDCARDS[action]
                else:
                    unexplained.append(f"Action::{action}")
        for resource in (_flatten(r) for r in _as_list(st.get("Resource", []))):
            if resource == "*":
                missing = [a for a in actions if a not in STAR_RESOURCE_ACTIONS]
                if missing:
                    unexplained.append(f"Resource::* for {missing}")
                else:
                    reasons["Resource::*"] = "; ".join(sorted({STAR_RESOURCE_ACTIONS[a] for a in actions}))
            elif "*" in resource:
                match = next((why for pattern, why in RESOURCE_WILDCARDS if re.fullmatch(pattern, resource)), None)
                if match is None:
                    unexplained.append(f"Resource::{resource}")
                else:
                    reasons[f"Resource::{resource}"] = match
    return reasons, unexplained


def _acknowledge_policies(stack: Stack) -> None:
    for node in stack.node.find_all():
        if isinstance(node, iam.CfnPolicy):
            document = stack.resolve(node.policy_document)
            reasons, _ = wildcard_reasons(document.get("Statement", []))
            for evidence, reason in reasons.items():
                acknowledge(node, f"IAM5[{evidence}]", reason)


def _acknowledge_api(stack: Stack) -> None:
    for node in stack.node.find_all():
        if isinstance(node, apigw.Method) and node.node.default_child is not None:
            method = node.node.default_child
            resolved = stack.resolve(method.api_key_required)  # type: ignore[attr-defined]
            reason = KEYED_METHOD_REASON if resolved else PUBLIC_METHOD_REASON
            if node.http_method == "OPTIONS":
                reason = "CORS preflight: browsers send it without credentials by design"
            if stack.resolve(method.authorization_type) != "COGNITO_USER_POOLS":  # type: ignore[attr-defined]
                acknowledge(method, "APIG4", reason)
                acknowledge(method, "COG4", reason)
        if isinstance(node, apigw.RestApi) and node.node.try_find_child("CloudWatchRole"):
            role = node.node.find_child("CloudWatchRole").node.default_child
            acknowledge(
                role,  # type: ignore[arg-type]
                "IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]",
                "API Gateway's account-level logging role; this AWS policy is the one the service documents",
            )
        if isinstance(node, apigw.Stage):
            acknowledge(
                node.node.default_child,  # type: ignore[arg-type]
                "APIG3",
                "no WAF by default: per-key throttling and quotas come from the usage plan; a WebACL can be "
                "associated with the stage by the operator (docs/deploy.md) at its own cost",
            )


def acknowledge_findings(stack: Stack) -> None:
    """Called once the stack is complete."""
    _acknowledge_policies(stack)
    _acknowledge_api(stack)
    endpoints_sg = stack.node.find_child("Network").node.find_child("EndpointsSg").node.default_child
    acknowledge(
        endpoints_sg,  # type: ignore[arg-type]
        "EC23",
        "ingress only from the functions' security group on 443; the rule cannot evaluate a group reference",
    )
