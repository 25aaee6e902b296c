"""One Lambda function the Encore way: its own role and log group, X-Ray tracing, Powertools and our layers,
and the configuration as ``ENCORE_*`` environment variables parsed once by ``EncoreConfig.from_env``."""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from cdk_app.bundling import function_code
from encore.config import EncoreConfig, runtime_environment

RUNTIME = lambda_.Runtime.PYTHON_3_14
RETENTION_NAMES = {
    1: "ONE_DAY",
    3: "THREE_DAYS",
    5: "FIVE_DAYS",
    7: "ONE_WEEK",
    14: "TWO_WEEKS",
    30: "ONE_MONTH",
    60: "TWO_MONTHS",
    90: "THREE_MONTHS",
    120: "FOUR_MONTHS",
    150: "FIVE_MONTHS",
    180: "SIX_MONTHS",
    365: "ONE_YEAR",
    400: "THIRTEEN_MONTHS",
    545: "EIGHTEEN_MONTHS",
    731: "TWO_YEARS",
    1096: "THREE_YEARS",
    1827: "FIVE_YEARS",
    2192: "SIX_YEARS",
    2557: "SEVEN_YEARS",
    2922: "EIGHT_YEARS",
    3288: "NINE_YEARS",
    3653: "TEN_YEARS",
}


def log_group(scope: Construct, id: str, config: EncoreConfig) -> logs.LogGroup:
    """A log group with the stage's retention (the configuration only admits periods CloudWatch accepts)."""
    return logs.LogGroup(
        scope,
        id,
        retention=getattr(logs.RetentionDays, RETENTION_NAMES[config.deploy.log_retention_days]),
        removal_policy=RemovalPolicy.DESTROY,
    )


# What Lambda needs to attach a function to its subnets (the EC2 part of AWSLambdaVPCAccessExecutionRole). CDK adds
# it only to roles it creates; these functions bring their own, and CreateFunction refuses a VPC function whose role
# cannot manage network interfaces.
VPC_NETWORK_INTERFACE_ACTIONS = (
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
)


def config_environment(config: EncoreConfig, resources: dict[str, str], cache_url: str | None) -> dict[str, str]:
    """The runtime configuration (shared with the twin), with deployed names, and Powertools' settings."""
    env = runtime_environment(config, resources)
    env.pop("ENCORE_REGION")  # each function sets its stack's region
    if cache_url:
        env["ENCORE_CACHE_URL"] = cache_url
    return env | {"POWERTOOLS_SERVICE_NAME": config.project, "POWERTOOLS_METRICS_NAMESPACE": "Encore"}


class EncoreFunction(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: EncoreConfig,
        folder: str,
        handler: str,
        description: str,
        layers: list[lambda_.ILayerVersion],
        environment: dict[str, str],
        vpc: ec2.IVpc | None = None,
        security_groups: list[ec2.ISecurityGroup] | None = None,
        timeout: Duration | None = None,
        memory_mb: int | None = None,
        function_name: str | None = None,
    ) -> None:
        super().__init__(scope, id)
        stack = Stack.of(self)
        self.log_group = log_group(self, "Logs", config)
        self.role = iam.Role(
            self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"), description=description
        )
        self.log_group.grant_write(self.role)
        if vpc is not None:
            self.role.add_to_policy(
                iam.PolicyStatement(
                    sid="NetworkInterfacesInTheVpc",
                    actions=list(VPC_NETWORK_INTERFACE_ACTIONS),
                    resources=["*"],  # the interfaces Lambda creates are named only when it creates them
                )
            )
        env: dict[str, Any] = dict(environment)
        env["ENCORE_REGION"] = stack.region
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=RUNTIME,
            architecture=lambda_.Architecture.X86_64,
            code=function_code(folder),
            handler=handler,
            function_name=function_name,
            description=description,
            role=self.role,
            layers=layers,
            environment=env,
            tracing=lambda_.Tracing.ACTIVE,
            log_group=self.log_group,
            timeout=timeout or Duration.seconds(config.deploy.lambda_timeout_s),
            memory_size=memory_mb or config.deploy.lambda_memory_mb,
            vpc=vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED) if vpc else None,
            security_groups=security_groups,
        )
