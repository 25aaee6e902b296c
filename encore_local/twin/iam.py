"""Who calls the twin's AWS: each function, job, training run and state machine runs with credentials of its own
role, so a call reaching the twin says which of the template's roles made it.

A principal is ``<stack>.<role's logical id>``; its access key id is ``twin.<principal>``. Calls signed with any
other key (the operator: the demo, tests, a shell) are the account's own.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import boto3
from moto.iam.access_control import IAMPolicy, PermissionResult

from encore_local.twin.assembly import ACCOUNT

if TYPE_CHECKING:
    from encore_local.twin.assembly import Deployment, TwinStack

KEY_PREFIX = "twin."
SECRET = "twin-secret"  # noqa: S105 - moto accepts any secret; it never leaves this machine
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")


def credentials(principal: str) -> dict[str, str]:
    """The environment variables that make a process call as ``principal``."""
    return {"AWS_ACCESS_KEY_ID": KEY_PREFIX + principal, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_SESSION_TOKEN": SECRET}


def principal_of(authorization: str) -> str | None:
    """The principal that signed a request (from its ``Authorization`` header), or None for the operator."""
    match = _CREDENTIAL.search(authorization or "")
    if match is None or not match.group(1).startswith(KEY_PREFIX):
        return None
    return match.group(1)[len(KEY_PREFIX) :]


def client_for(service: str, env: dict[str, str]) -> Any:
    """A boto3 client for the twin described by ``env`` (endpoint, region, credentials), whatever this process's
    own environment says."""
    return boto3.client(
        service,
        endpoint_url=env.get("AWS_ENDPOINT_URL"),
        region_name=env.get("AWS_REGION"),
        aws_access_key_id=env.get("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY"),
        aws_session_token=env.get("AWS_SESSION_TOKEN"),
    )


def allows(stack: TwinStack, role_id: str, action: str, resource: str) -> bool:
    """Whether the role's policies in the template (inline and attached, resolved to the twin's names) allow
    ``action`` on ``resource``, by moto's IAM policy evaluator (an explicit deny wins)."""
    statements = [stack.resolve(s) for s in stack.assembly.statements_of(role_id)]
    document = {"Version": "2012-10-17", "Statement": statements}
    result = IAMPolicy({"policy_document": json.dumps(document)}).is_action_permitted(action, resource)
    return bool(result == PermissionResult.PERMITTED)


def role_of(deployment: Deployment, principal: str) -> tuple[TwinStack, str] | None:
    """The stack and role logical id behind a principal."""
    stack_name, _, role_id = principal.partition(".")
    for stack in deployment.stacks:
        if stack.stack_name == stack_name and role_id in stack.resources:
            return stack, role_id
    return None


def access_denied(principal: str, stack: TwinStack, role_id: str, action: str, resource: str) -> str:
    """IAM's sentence, naming the principal, the action and the resource."""
    return (
        f"User: arn:aws:sts::{ACCOUNT}:assumed-role/{stack.names[role_id]}/twin is not authorized to perform: "
        f"{action} on resource: {resource} because no identity-based policy allows the {action} action "
        f"(the twin's principal {principal})"
    )
