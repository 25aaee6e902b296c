"""Create a synthesized stack's resources in the twin's emulated AWS, from the template's own properties.

What the application's code calls at run time is created: buckets, DynamoDB tables (keys, indexes, time to
live), the Firehose delivery stream into the lake, the Glue database and jobs, the alarm topic, the model
package group, the state machines (their definitions as synthesized, so one that does not parse fails
here as CreateStateMachine fails) and secrets (their values generated as the template asks). The web app's
``BucketDeployment`` is carried out as its provider does it: the template's source asset unpacked into the
destination bucket, each object with its content type, what the asset lacks pruned. Idempotent: what exists
already is left as it is (published files are replaced). Returns what exists afterwards, by kind. Resources that
only AWS runs (VPC, API Gateway, CloudFront, alarms, the cache) are not created in moto: the twin stands in for
them itself (docs/twin.md).
"""

from __future__ import annotations

import json
import mimetypes
import re
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from encore_local.twin.assembly import TwinStack

_TABLE_KEYS = ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes", "LocalSecondaryIndexes", "BillingMode")
_DESTINATION_KEYS = ("RoleARN", "BucketARN", "Prefix", "ErrorOutputPrefix", "BufferingHints", "CompressionFormat")


def provision(stack: TwinStack, client: Callable[[str], Any]) -> dict[str, list[str]]:
    kinds = ("buckets", "tables", "delivery_streams", "glue_databases", "glue_jobs", "topics", "model_package_groups",
             "state_machines", "secrets", "published")  # fmt: skip
    out: dict[str, list[str]] = {k: [] for k in kinds}
    s3 = client("s3")
    buckets = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    for lid in stack.of_type("AWS::S3::Bucket"):
        name = stack.names[lid]
        if name not in buckets:
            s3.create_bucket(Bucket=name)
        out["buckets"].append(name)

    ddb = client("dynamodb")
    tables = set(ddb.get_paginator("list_tables").paginate().build_full_result().get("TableNames", []))
    for kind in ("AWS::DynamoDB::GlobalTable", "AWS::DynamoDB::Table"):
        for lid in stack.of_type(kind):
            props = stack.properties(lid)
            name = props["TableName"]
            if name not in tables:
                ddb.create_table(TableName=name, **{k: props[k] for k in _TABLE_KEYS if k in props})
                ttl = props.get("TimeToLiveSpecification")
                if ttl and ttl.get("Enabled"):
                    ddb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
            out["tables"].append(name)

    firehose = client("firehose")
    streams = set(firehose.list_delivery_streams(Limit=10000)["DeliveryStreamNames"])
    for lid in stack.of_type("AWS::KinesisFirehose::DeliveryStream"):
        props = stack.properties(lid)
        name = props["DeliveryStreamName"]
        if name not in streams:
            destination = props["ExtendedS3DestinationConfiguration"]
            firehose.create_delivery_stream(
                DeliveryStreamName=name,
                DeliveryStreamType=props.get("DeliveryStreamType", "DirectPut"),
                ExtendedS3DestinationConfiguration={k: destination[k] for k in _DESTINATION_KEYS if k in destination},
            )
        out["delivery_streams"].append(name)

    glue = client("glue")
    databases = {d["Name"] for d in glue.get_databases()["DatabaseList"]}
    for lid in stack.of_type("AWS::Glue::Database"):
        database = stack.properties(lid)["DatabaseInput"]
        if database["Name"] not in databases:
            glue.create_database(DatabaseInput=database)
        out["glue_databases"].append(database["Name"])
    jobs = set(glue.list_jobs(MaxResults=1000).get("JobNames", []))
    for job in stack.glue_jobs().values():
        if job.name not in jobs:
            props = stack.properties(job.logical_id)
            glue.create_job(**_job_request(props))
        out["glue_jobs"].append(job.name)

    sns = client("sns")
    for lid in stack.of_type("AWS::SNS::Topic"):
        props = stack.properties(lid)
        attributes = {"KmsMasterKeyId": props["KmsMasterKeyId"]} if "KmsMasterKeyId" in props else {}
        arn = sns.create_topic(Name=stack.names[lid], Attributes=attributes)["TopicArn"]  # idempotent in SNS
        out["topics"].append(arn)

    sagemaker = client("sagemaker")
    groups = {g["ModelPackageGroupName"] for g in sagemaker.list_model_package_groups()["ModelPackageGroupSummaryList"]}
    for lid in stack.of_type("AWS::SageMaker::ModelPackageGroup"):
        name = stack.properties(lid)["ModelPackageGroupName"]
        if name not in groups:
            sagemaker.create_model_package_group(ModelPackageGroupName=name)
        out["model_package_groups"].append(name)

    sfn = client("stepfunctions")
    machines = {m["name"] for m in sfn.list_state_machines()["stateMachines"]}
    for machine in stack.state_machines().values():
        if machine.name not in machines:
            sfn.create_state_machine(
                name=machine.name, definition=machine.definition, roleArn=machine.role_arn, type="STANDARD"
            )
        out["state_machines"].append(machine.arn)

    secrets = client("secretsmanager")
    existing = {x["Name"] for x in secrets.get_paginator("list_secrets").paginate().build_full_result()["SecretList"]}
    for lid in stack.of_type("AWS::SecretsManager::Secret"):
        name = stack.names[lid]  # Ref gives this name on the twin; GetSecretValue takes it as the id
        if name not in existing:
            secrets.create_secret(Name=name, SecretString=_generated(secrets, stack.properties(lid)))
        out["secrets"].append(name)

    for lid in stack.of_type("Custom::CDKBucketDeployment"):
        out["published"].extend(_publish(stack, stack.properties(lid), s3))
    return {kind: sorted(names) for kind, names in out.items()}


def _generated(secrets: Any, props: dict[str, Any]) -> str:
    """A secret's value as CloudFormation makes it: ``SecretString`` as given, else ``GenerateSecretString``."""
    if "SecretString" in props:
        return str(props["SecretString"])
    spec = props.get("GenerateSecretString", {})
    options = {k: spec[k] for k in ("PasswordLength", "ExcludeCharacters", "ExcludeNumbers", "ExcludePunctuation",
                                    "ExcludeUppercase", "ExcludeLowercase", "IncludeSpace") if k in spec}  # fmt: skip
    return str(secrets.get_random_password(**options)["RandomPassword"])


_DYNAMIC = re.compile(
    r"\{\{resolve:secretsmanager:([^:}]+(?::[^:}]+){0,6}?):SecretString:([^:}]*):?([^:}]*):?([^:}]*)\}\}"
)


def dynamic_references(value: str, client: Callable[[str], Any]) -> str:
    """``value`` with its ``{{resolve:secretsmanager:...}}`` references replaced as CloudFormation replaces them
    at deploy time (a JSON key picks one field of the secret)."""

    def secret(match: re.Match[str]) -> str:
        secret_id, json_key = match.group(1), match.group(2)
        text = str(client("secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"])
        return str(json.loads(text)[json_key]) if json_key else text

    return _DYNAMIC.sub(secret, value)


def _asset_files(asset: Path) -> Iterator[tuple[str, bytes]]:
    if asset.is_dir():
        for path in sorted(asset.rglob("*")):
            if path.is_file():
                yield path.relative_to(asset).as_posix(), path.read_bytes()
        return
    with zipfile.ZipFile(asset) as z:
        for name in sorted(z.namelist()):
            if not name.endswith("/"):
                yield name, z.read(name)


def _publish(stack: TwinStack, props: dict[str, Any], s3: Any) -> list[str]:
    """What ``BucketDeployment``'s provider does: unpack each source asset into the destination (``aws s3
    sync``: content types guessed from the names), then delete what the sources lack when ``Prune`` is set."""
    bucket, prefix = props["DestinationBucketName"], props.get("DestinationBucketKeyPrefix", "")
    written: list[str] = []
    for key in props["SourceObjectKeys"]:
        for name, body in _asset_files(stack.asset(key)):
            kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
            s3.put_object(Bucket=bucket, Key=prefix + name, Body=body, ContentType=kind)
            written.append(prefix + name)
    if str(props.get("Prune", "true")).lower() == "true":
        listed = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        stale = [{"Key": o["Key"]} for page in listed for o in page.get("Contents", []) if o["Key"] not in written]
        if stale:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": stale})
    return [f"s3://{bucket}/{key}" for key in written]


def _job_request(props: dict[str, Any]) -> dict[str, Any]:
    keys = ("Name", "Role", "Command", "DefaultArguments", "GlueVersion", "WorkerType", "NumberOfWorkers",
            "Timeout", "MaxRetries", "ExecutionProperty", "Description")  # fmt: skip
    return {k: props[k] for k in keys if k in props}
