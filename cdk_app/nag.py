"""The cdk-nag AwsSolutions findings this stack accepts: each on the one resource it concerns, with its reason.

Nothing is acknowledged rule-wide. IAM5 (wildcards) is acknowledged per policy and per wildcard, and only
where the tables below give that wildcard a reason; a wildcard nobody explained still fails synthesis.
"""

from __future__ import annotations

import re
from typing import Any

from aws_cdk import Acknowledgment, Stack, Validations
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import IConstruct

from encore.routes import ROUTES_BY_PATH

# Wildcard actions written by CDK's grant_* methods, each confined to the resources of its statement.
GRANT_WILDCARDS: dict[str, str] = {
    "s3:GetObject*": "CDK grant: GetObject, GetObjectVersion, GetObjectAcl/Tagging on the named bucket only",
    "s3:GetBucket*": "CDK grant: bucket metadata reads (location, versioning) of the named bucket only",
    "s3:List*": "CDK grant: listing the named bucket only (prefix scans of the lake)",
    "s3:DeleteObject*": "CDK grant: overwriting a partition deletes its old objects, named bucket only",
    "s3:Abort*": "CDK grant: abort multipart uploads to the named bucket only",
    "kms:GenerateDataKey*": "CDK grant: GenerateDataKey(WithoutPlaintext) on the one data key",
    "kms:ReEncrypt*": "CDK grant: ReEncryptFrom/To on the one data key (S3 bucket keys)",
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
    "ec2:DescribeSubnets": "Lambda in a VPC: Describe* has no resource type",
    "ec2:DeleteNetworkInterface": "Lambda in a VPC: the function's own ENIs, named only at run time",
    "ec2:AssignPrivateIpAddresses": "Lambda in a VPC: the function's own ENIs, named only at run time",
    "ec2:UnassignPrivateIpAddresses": "Lambda in a VPC: the function's own ENIs, named only at run time",
    "application-autoscaling:DescribeScalableTargets": "Describe* of Application Auto Scaling has no resource type",
    "sagemaker:ListEndpointConfigs": "teardown finds the endpoint's configurations: List* has no resource type",
    "sagemaker:ListModels": "teardown finds the endpoint's models: List* has no resource type",
    "logs:CreateLogDelivery": "Step Functions logging: log-delivery APIs have no resource type",
    "logs:GetLogDelivery": "Step Functions logging: log-delivery APIs have no resource type",
    "logs:UpdateLogDelivery": "Step Functions logging: log-delivery APIs have no resource type",
    "logs:DeleteLogDelivery": "Step Functions logging: log-delivery APIs have no resource type",
    "logs:ListLogDeliveries": "Step Functions logging: log-delivery APIs have no resource type",
    "logs:PutResourcePolicy": "Step Functions logging: the account's log resource policy has no narrower ARN",
    "logs:DescribeResourcePolicies": "Step Functions logging: Describe* has no resource type",
    "logs:DescribeLogGroups": "Step Functions logging: Describe* has no resource type",
    "cloudfront:CreateInvalidation": "CDK's BucketDeployment invalidates the web app's cache after publishing; its "
    "provider is shared by the stack's deployments, so CDK grants it on '*' (the stack has one distribution)",
    "cloudfront:GetInvalidation": "CDK's BucketDeployment waits for that invalidation (same provider, same reason)",
}

# Resource wildcards (nag's evidence, as a pattern) and why each is as narrow as it can be.
RESOURCE_WILDCARDS: tuple[tuple[str, str], ...] = (
    (r"<DataLake\w+\.Arn>/([\w-]+/)*\*", "objects of the lake bucket, under the one prefix named where there is one"),
    (r".*:log-group:/aws/sagemaker/\*", "SageMaker writes to log groups it names per job and endpoint"),
    (r".*:log-group:/aws-glue/\*", "Glue writes to its fixed /aws-glue/ log groups"),
    (r".*:glue:.*:table/encore_\w+/\*", "tables of the Encore database only"),
    (r".*:model-package/encore-[\w-]+/\*", "versions in the Encore model package group only"),
    (r".*:model/encore-[\w-]+-\*", "models named after the endpoint, one per promoted version"),
    (r".*:endpoint-config/encore-[\w-]+-\*", "endpoint configurations named after the endpoint, one per version"),
    (r".*:training-job/\*", "training jobs are named per pipeline execution"),
    (r".*:application-autoscaling:.*:scalable-target/\*", "scalable target ids are assigned by AWS at registration"),
    (
        r".*:cloudwatch:.*:alarm:TargetTracking-endpoint/encore-[\w-]+/\*",
        "the alarms Application Auto Scaling names after the endpoint's target-tracking policy",
    ),
    (r"<Model\w+Function\w+\.Arn>:\*", "Step Functions invokes the pipeline function's versions and aliases"),
    (r".*:states:.*:execution:encore-[\w-]+:\*", "executions of the Encore state machine named, named per run"),
    (r"<SiteFiles\w+\.Arn>/\*", "objects of the web app's bucket: publishing replaces the whole app"),
    (r"<TablesIdempotency\w+\.Arn>/index/\*", "the idempotency table's one index: the listener index a deletion reads"),
)

# CDK's asset bucket, read by the roles below only; what each reads there, by the construct path of its policy.
ASSET_BUCKET = r"arn:(<AWS::Partition>|aws[a-z-]*):s3:::cdk-[a-z0-9]+-assets-(<AWS::AccountId>|\d{12})-[a-z0-9-]+/\*"
ASSET_READERS: dict[str, str] = {
    r"Features/JobRole": "the Glue job scripts and their Python library (CDK assets)",
    r"Model/TrainingRole": "the training source, sourcedir.tar.gz (a CDK asset)",
    r"Custom::CDKBucketDeployment\w+/ServiceRole": "the web app's files, webapp/ as a zip (a CDK asset)",
}

PUBLIC_METHOD_REASON = (
    "public by design: the liveness probe and the API's own documentation (OpenAPI document, Swagger UI) "
    "answer anyone and reveal no listener data"
)
KEYED_METHOD_REASON = (
    "non-personal catalogue data (tracks, similar tracks, charts, trending): the API key only identifies, "
    "meters and throttles a client through the usage plan; it is not authorization, and this data needs none"
)
OPERATIONS_METHOD_REASON = (
    "read-only operational data (model versions, offline metrics, pipeline executions), nothing about a listener: "
    "the API key identifies, meters and throttles the client; the web app's operations view reads it"
)
LISTENER_METHOD_REASON = (
    "a listener route in a stage without an authorizer (serving.write_auth 'none', as the {stage} stage has): "
    "the API key only identifies, meters and throttles a client, it is not authorization; prod requires a "
    "Cognito user-pool JWT on these routes (cdk.json stages.prod.serving.write_auth = 'cognito')"
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


def wildcard_reasons(statements: list[dict[str, Any]], path: str = "") -> tuple[dict[str, str], list[str]]:
    """For a policy's statements (``path``: the construct path of the policy): the IAM5 evidence with its
    reason, and wildcards that have none."""
    reasons: dict[str, str] = {}
    unexplained: list[str] = []
    star_actions: set[str] = set()  # every action on "*" in the policy: its one IAM5 finding names them all
    reader = next((why for role, why in ASSET_READERS.items() if re.search(f"(^|/){role}(/|$)", path)), None)
    table = (*RESOURCE_WILDCARDS, (ASSET_BUCKET, f"CDK's asset bucket: {reader}")) if reader else RESOURCE_WILDCARDS
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
                star_actions.update(actions)
            elif "*" in resource:
                match = next((why for pattern, why in table if re.fullmatch(pattern, resource)), None)
                if match is None:
                    unexplained.append(f"Resource::{resource}")
                else:
                    reasons[f"Resource::{resource}"] = match
    if star_actions and all(a in STAR_RESOURCE_ACTIONS for a in star_actions):
        reasons["Resource::*"] = "; ".join(f"{a}: {STAR_RESOURCE_ACTIONS[a]}" for a in sorted(star_actions))
    return reasons, unexplained


def _acknowledge_policies(stack: Stack) -> None:
    for node in stack.node.find_all():
        if isinstance(node, iam.CfnPolicy):
            document = stack.resolve(node.policy_document)
            reasons, _ = wildcard_reasons(document.get("Statement", []), node.node.path)
            for evidence, reason in reasons.items():
                acknowledge(node, f"IAM5[{evidence}]", reason)


def _method_reason(node: apigw.Method, stage: str) -> str | None:
    """Why a method without a Cognito authorizer is right as it is (from the routes table); None: it is not."""
    if node.http_method == "OPTIONS":
        return "CORS preflight: browsers send it without credentials by design"
    route = ROUTES_BY_PATH.get(node.resource.path)
    if route is None or node.http_method not in route.methods:
        return None  # a method the routes table does not know: let the finding fail synthesis
    if route.listener:
        return LISTENER_METHOD_REASON.format(stage=stage)
    if route.function == "ops":
        return OPERATIONS_METHOD_REASON
    return KEYED_METHOD_REASON if route.api_key else PUBLIC_METHOD_REASON


def _acknowledge_api(stack: Stack) -> None:
    stage = str(getattr(getattr(stack, "config", None), "stage", "this"))
    for node in stack.node.find_all():
        if isinstance(node, apigw.Method) and node.node.default_child is not None:
            method = node.node.default_child
            reason = _method_reason(node, stage)
            if reason and stack.resolve(method.authorization_type) != "COGNITO_USER_POOLS":  # type: ignore[attr-defined]
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


THREAT_PROTECTION_REASON = (
    "Cognito's threat protection (compromised credentials, adaptive authentication) is its Plus plan, priced per "
    "monthly active user, a cost that grows with the listener base; this stage does not buy it. Passwords of 12+ "
    "characters and TOTP MFA are required; set deploy.cognito_threat_protection to turn it on (docs/deploy.md)"
)


def _acknowledge_user_pool(stack: Stack) -> None:
    config = getattr(stack, "config", None)
    if config is None or config.deploy.cognito_threat_protection:
        return
    for node in stack.node.find_all():
        if isinstance(node, cognito.CfnUserPool):
            acknowledge(node, "COG8", THREAT_PROTECTION_REASON)
            acknowledge(node, "COG3", THREAT_PROTECTION_REASON)


SITE_FINDINGS: dict[str, str] = {
    "SMG4": "the site's API key stands for every browser of the web app in API Gateway's usage plan (throttle, "
    "metering); anyone can use it through the distribution, so it protects nothing that rotation would. It is "
    "kept in Secrets Manager so that neither the template nor the page contains it",
    "CFR4": "the distribution has CloudFront's default *.cloudfront.net certificate, with which CloudFront fixes "
    "the minimum protocol at TLSv1; a custom domain with an ACM certificate sets TLSv1.2_2021 (docs/webapp.md)",
    "CFR1": "no geo restriction by default: a music service sets its markets, per its licences (docs/webapp.md)",
    "CFR2": "no WAF by default (a web ACL has a monthly cost): the site's key has its own usage plan and throttle; "
    "attach a web ACL with a rate-based rule before a public launch (docs/webapp.md)",
}
PUBLISHER_FINDINGS: dict[str, str] = {
    "IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]": (
        "CDK's BucketDeployment provider (runs only during a deployment) writes its logs with this AWS policy"
    ),
    "L1": "CDK's BucketDeployment provider: aws-cdk-lib pins its runtime and moves it with its releases",
}


def _acknowledge_site(stack: Stack) -> None:
    site = stack.node.try_find_child("Site")
    if site is None:
        return
    for node in site.node.find_all():
        if isinstance(node, (secretsmanager.CfnSecret, cloudfront.CfnDistribution)):
            for rule, reason in SITE_FINDINGS.items():
                if rule.startswith("SMG") == isinstance(node, secretsmanager.CfnSecret):
                    acknowledge(node, rule, reason)
    for child in stack.node.children:
        if child.node.id.startswith("Custom::CDKBucketDeployment"):
            for node in child.node.find_all():
                if isinstance(node, (iam.CfnRole, lambda_.CfnFunction)):
                    for rule, reason in PUBLISHER_FINDINGS.items():
                        if rule.startswith("IAM4") == isinstance(node, iam.CfnRole):
                            acknowledge(node, rule, reason)


def acknowledge_findings(stack: Stack) -> None:
    """Called once the stack is complete."""
    _acknowledge_policies(stack)
    _acknowledge_site(stack)
    _acknowledge_api(stack)
    _acknowledge_user_pool(stack)
    endpoints_sg = stack.node.find_child("Network").node.find_child("EndpointsSg").node.default_child
    acknowledge(
        endpoints_sg,  # type: ignore[arg-type]
        "EC23",
        "ingress only from the functions' security group on 443; the rule cannot evaluate a group reference",
    )
