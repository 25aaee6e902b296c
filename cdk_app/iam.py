"""IAM statements several roles need, written once."""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_iam as iam


def allow_log_groups(role: iam.IRole, sid: str, prefix: str, *extra_actions: str) -> None:
    """Write to the log groups a service names itself under ``prefix`` (``/aws-glue/``, ``/aws/sagemaker/``)."""
    stack = Stack.of(role)
    role.add_to_principal_policy(
        iam.PolicyStatement(
            sid=sid,
            actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", *extra_actions],
            resources=[f"arn:{stack.partition}:logs:{stack.region}:{stack.account}:log-group:{prefix}*"],
        )
    )


def allow_metrics(role: iam.IRole, sid: str, *namespaces: str) -> None:
    """PutMetricData, which has no resource type, limited to the given namespaces by condition."""
    role.add_to_principal_policy(
        iam.PolicyStatement(
            sid=sid,
            actions=["cloudwatch:PutMetricData"],
            resources=["*"],
            conditions={"StringLike": {"cloudwatch:namespace": list(namespaces)}},
        )
    )
