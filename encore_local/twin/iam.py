"""IAM in the twin: each function, job, training run and state machine calls with credentials of its own role,
and every call it makes is authorized against that role's policies in the template before the twin answers it.

A principal is ``<stack>.<role's logical id>``; its access key id is ``twin.<principal>``. Calls signed with any
other key (the operator: the demo, tests, a shell) are the account's own and are not checked.

``needed`` says which IAM actions on which resources a request needs, as AWS authorizes it (a transaction's
items one by one, a copy's source as well as its target, ``iam:PassRole`` for the role a training job or model is
given); a request it cannot classify is refused, so a new kind of call cannot slip past unchecked. The policies
are evaluated as ``make check-deploy`` evaluates them (``cdk_app.deploy_rules.Policy``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote
from xml.sax.saxutils import unescape

import boto3

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


def allows(stack: TwinStack, role_id: str, action: str, resource: str, context: dict[str, str] | None = None) -> bool:
    """Whether the role's policies in the template allow ``action`` on ``resource`` (an explicit deny wins)."""
    return stack.policy(role_id).allows(action, resource, context)


def role_of(deployment: Deployment, principal: str) -> tuple[TwinStack, str] | None:
    """The stack and role logical id behind a principal."""
    stack_name, _, role_id = principal.partition(".")
    for stack in deployment.stacks:
        if stack.stack_name == stack_name and role_id in stack.resources:
            return stack, role_id
    return None


def denied(deployment: Deployment, principal: str, wanted: list[Needed]) -> dict[str, str] | None:
    """IAM's refusal of the first need the principal's policies do not allow (None: all allowed): the
    principal, the action, the resource and IAM's sentence."""
    found = role_of(deployment, principal)
    if found is None:
        return {"principal": principal, "action": "", "resource": "",
                "message": f"the twin's principal {principal} is no role of the deployed stacks"}  # fmt: skip
    stack, role_id = found
    for need in wanted:
        if not allows(stack, role_id, need.action, need.resource, dict(need.context)):
            message = access_denied(principal, stack, role_id, need.action, need.resource)
            return {"principal": principal, "action": need.action, "resource": need.resource, "message": message}
    return None


def access_denied(principal: str, stack: TwinStack, role_id: str, action: str, resource: str) -> str:
    """IAM's sentence, naming the principal, the action and the resource."""
    return (
        f"User: arn:aws:sts::{ACCOUNT}:assumed-role/{stack.names[role_id]}/twin is not authorized to perform: "
        f"{action} on resource: {resource} because no identity-based policy allows the {action} action "
        f"(the twin's principal {principal})"
    )


# -- which IAM actions on which resources a request needs ---------------------------------------------------------

_SCOPE = re.compile(r"Credential=[^/]+/\d+/([^/]+)/([^/]+)/")
_ARN = re.compile(r"^arn:aws[\w-]*:")
_INVOCATION = re.compile(r"^/2015-03-31/functions/([^/]+)/invocations$")
_LISTING = {"list-type", "prefix", "delimiter", "continuation-token", "max-keys", "start-after", "encoding-type",
            "fetch-owner", "marker"}  # fmt: skip
_TO_SAGEMAKER = (("iam:PassedToService", "sagemaker.amazonaws.com"),)


class UnknownRequest(Exception):
    """A request the twin cannot tell the IAM actions of: the check refuses it rather than wave it through."""


@dataclass(frozen=True)
class Needed:
    action: str
    resource: str
    context: tuple[tuple[str, str], ...] = ()  # condition keys IAM would see, e.g. iam:PassedToService


@dataclass(frozen=True)
class _Arns:
    region: str

    def of(self, service: str, resource: str) -> str:
        return f"arn:aws:{service}:{self.region}:{ACCOUNT}:{resource}"

    def function(self, name: str) -> str:
        if _ARN.match(name):
            return ":".join(name.split(":")[:7])  # a qualified ARN is authorized as the function's
        return self.of("lambda", f"function:{name.split(':', maxsplit=1)[0]}")


def needed(environ: dict[str, Any], body: bytes) -> list[Needed]:
    """The IAM actions and resources a request needs, as AWS authorizes it (one request may need several, as
    ``TransactWriteItems`` or a copy does). Raises ``UnknownRequest`` for a call it cannot classify."""
    scope = _SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    if scope is None:
        raise UnknownRequest("the request is not signed with SigV4")
    region, service = scope.groups()
    arns = _Arns(region)
    method, path = environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "/")
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if service == "s3":
        return _s3(environ, method, path, body)
    if target and service in _JSON:
        return _JSON[service](target.rpartition(".")[2], json.loads(body or b"{}"), arns)
    invocation = _INVOCATION.match(path)
    if service == "lambda" and invocation and method == "POST":
        return [Needed("lambda:InvokeFunction", arns.function(unquote(invocation.group(1))))]
    form = {k: v[0] for k, v in parse_qs(body.decode(errors="replace")).items()}
    if service in _QUERY and "Action" in form:
        return _QUERY[service](form)
    raise UnknownRequest(f"{service} {method} {path} {target}".strip())


def _dynamodb(operation: str, params: dict[str, Any], arns: _Arns) -> list[Needed]:
    def table(name: str, index: str | None = None) -> str:
        return arns.of("dynamodb", f"table/{name}" + (f"/index/{index}" if index else ""))

    if operation in ("BatchGetItem", "BatchWriteItem"):
        return [Needed(f"dynamodb:{operation}", table(name)) for name in params["RequestItems"]]
    if operation in ("TransactWriteItems", "TransactGetItems"):  # authorized item by item
        actions = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
                   "ConditionCheck": "ConditionCheckItem", "Get": "GetItem"}  # fmt: skip
        return [
            Needed(f"dynamodb:{actions[kind]}", table(request["TableName"]))
            for item in params["TransactItems"]
            for kind, request in item.items()
        ]
    if "TableName" not in params:
        return [Needed(f"dynamodb:{operation}", "*")]
    return [Needed(f"dynamodb:{operation}", table(params["TableName"], params.get("IndexName")))]


def _glue(operation: str, params: dict[str, Any], arns: _Arns) -> list[Needed]:
    action = f"glue:{operation}"
    if "JobName" in params:
        return [Needed(action, arns.of("glue", f"job/{params['JobName']}"))]
    # The Data Catalog authorizes the catalog, the database and the table a call touches.
    database = params.get("DatabaseName")
    table = params.get("TableName") or params.get("TableInput", {}).get("Name")
    resources = [arns.of("glue", "catalog")]
    resources += [arns.of("glue", f"database/{database}")] if database else []
    resources += [arns.of("glue", f"table/{database}/{table}")] if database and table else []
    return [Needed(action, r) for r in resources]


def _sagemaker(operation: str, params: dict[str, Any], arns: _Arns) -> list[Needed]:
    action = f"sagemaker:{operation}"
    kinds = {"TrainingJob": "training-job", "Model": "model", "EndpointConfig": "endpoint-config",
             "Endpoint": "endpoint"}  # fmt: skip
    for kind, resource in kinds.items():
        if f"{kind}Name" in params:  # SageMaker's ARNs carry names in lower case
            out = [Needed(action, arns.of("sagemaker", f"{resource}/{params[kind + 'Name'].lower()}"))]
            role = params.get("RoleArn") or params.get("ExecutionRoleArn")
            return out + ([Needed("iam:PassRole", role, _TO_SAGEMAKER)] if role else [])
    package = params.get("ModelPackageArn") or params.get("ModelPackageName")
    group = params.get("ModelPackageGroupName")
    if operation.startswith("List"):
        resource = "*"
    elif package:
        resource = package if _ARN.match(package) else arns.of("sagemaker", f"model-package/{package.lower()}")
    elif group:  # a new version in a group: authorized on the versions' ARNs, model-package/<group>/*
        resource = arns.of("sagemaker", f"model-package/{group.lower()}/*")
    else:
        raise UnknownRequest(action)
    return [Needed(action, resource)]


def _by_field(service: str, field: str, resource: Callable[[str, _Arns], str]) -> Any:
    """A JSON service whose calls are authorized on the resource one request field names ("*" without it)."""

    def classify(operation: str, params: dict[str, Any], arns: _Arns) -> list[Needed]:
        value = params.get(field)
        return [Needed(f"{service}:{operation}", resource(str(value), arns) if value else "*")]

    return classify


def _scaling(operation: str, params: dict[str, Any], arns: _Arns) -> list[Needed]:
    """Application Auto Scaling authorizes on the scalable target, whose id AWS assigns at registration (the
    twin's is derived from what the target scales); its Describe calls have no resource type."""
    if operation.startswith("Describe"):
        return [Needed(f"application-autoscaling:{operation}", "*")]
    target = "/".join(str(params.get(k, "")) for k in ("ServiceNamespace", "ResourceId", "ScalableDimension"))
    target_id = hashlib.sha256(target.encode()).hexdigest()[:32]
    return [
        Needed(
            f"application-autoscaling:{operation}", arns.of("application-autoscaling", f"scalable-target/{target_id}")
        )
    ]


def _metrics(operation: str, params: dict[str, Any], _arns: _Arns) -> list[Needed]:
    return [Needed(f"cloudwatch:{operation}", "*", (("cloudwatch:namespace", str(params.get("Namespace", ""))),))]


_JSON: dict[str, Callable[[str, dict[str, Any], _Arns], list[Needed]]] = {
    "dynamodb": _dynamodb,
    "glue": _glue,
    "sagemaker": _sagemaker,
    "firehose": _by_field("firehose", "DeliveryStreamName", lambda v, a: a.of("firehose", f"deliverystream/{v}")),
    "states": lambda op, params, arns: [
        Needed(f"states:{op}", str(params.get("stateMachineArn") or params.get("executionArn") or "*"))
    ],
    "logs": _by_field("logs", "logGroupName", lambda v, a: a.of("logs", f"log-group:{v}:*")),
    "kms": _by_field("kms", "KeyId", lambda v, a: v if _ARN.match(v) else a.of("kms", f"key/{v}")),
    "events": lambda op, params, arns: [
        Needed(f"events:{op}", arns.of("events", f"rule/{params.get('Name') or params.get('Rule')}"))
    ],
    "application-autoscaling": _scaling,
    "monitoring": _metrics,
}


def _sns(form: dict[str, str]) -> list[Needed]:
    action = "Publish" if form["Action"] == "PublishBatch" else form["Action"]
    return [Needed(f"sns:{action}", form.get("TopicArn") or form.get("TargetArn") or "*")]


_QUERY: dict[str, Callable[[dict[str, str]], list[Needed]]] = {
    "sns": _sns,
    "sts": lambda form: [Needed(f"sts:{form['Action']}", "*")],
    "monitoring": lambda form: _metrics(form["Action"], form, _Arns("")),
}


def _s3(environ: dict[str, Any], method: str, path: str, body: bytes) -> list[Needed]:
    host = environ.get("HTTP_HOST", "").split(":")[0]
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    bucket, _, key = path.lstrip("/").partition("/")
    if "." in host and not host.replace(".", "").isdigit() and not host.startswith("s3."):  # virtual-hosted style
        bucket, key = host.split(".")[0], path.lstrip("/")
    if not bucket:
        return [Needed("s3:ListAllMyBuckets", "*")]
    if key:
        return _s3_object(environ, method, f"arn:aws:s3:::{bucket}/{key}", query)
    if method == "POST" and "delete" in query:  # DeleteObjects: each key is authorized as a DeleteObject
        keys = re.findall(rb"<Key>(.*?)</Key>", body)
        return [Needed("s3:DeleteObject", f"arn:aws:s3:::{bucket}/{unescape(k.decode())}") for k in keys]
    reads = {"location": "s3:GetBucketLocation", "versioning": "s3:GetBucketVersioning",
             "uploads": "s3:ListBucketMultipartUploads", "versions": "s3:ListBucketVersions"}  # fmt: skip
    named = [reads[q] for q in query if q in reads] if method == "GET" else []
    plain = {"GET": "s3:ListBucket", "HEAD": "s3:ListBucket", "PUT": "s3:CreateBucket", "DELETE": "s3:DeleteBucket"}
    if not named and (method not in plain or set(query) - _LISTING):
        raise UnknownRequest(f"S3 {method} {path}?{environ.get('QUERY_STRING', '')}")
    return [Needed(named[0] if named else plain[method], f"arn:aws:s3:::{bucket}")]


def _s3_object(environ: dict[str, Any], method: str, arn: str, query: dict[str, Any]) -> list[Needed]:
    if "tagging" in query:
        return [Needed("s3:PutObjectTagging" if method == "PUT" else "s3:GetObjectTagging", arn)]
    if method in ("GET", "HEAD"):
        return [Needed("s3:ListMultipartUploadParts" if "uploadId" in query else "s3:GetObject", arn)]
    if method == "DELETE":
        return [Needed("s3:AbortMultipartUpload" if "uploadId" in query else "s3:DeleteObject", arn)]
    if method not in ("PUT", "POST"):
        raise UnknownRequest(f"S3 {method} {arn}")
    out = [Needed("s3:PutObject", arn)]  # a put, a part, or a multipart upload's start and end
    source = environ.get("HTTP_X_AMZ_COPY_SOURCE")
    if source:  # a copy reads its source as well
        out.append(Needed("s3:GetObject", "arn:aws:s3:::" + unquote(source).lstrip("/").split("?")[0]))
    return out
