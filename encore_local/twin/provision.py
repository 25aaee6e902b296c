"""Create a synthesized stack's resources in the twin's emulated AWS, from the template's own properties.

What the application's code calls at run time is created: buckets, DynamoDB tables (keys, indexes, time to
live), the Firehose delivery stream into the lake, the Glue database and jobs, the alarm topic, the model
package group and the state machines (their definitions as synthesized, so one that does not parse fails
here as CreateStateMachine fails). Idempotent: what exists already is left as it is. Returns what exists
afterwards, by kind. Resources that only AWS runs (VPC, API Gateway, alarms, the cache) are not created in moto:
the twin stands in for them itself (docs/twin.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from encore_local.twin.assembly import TwinStack

_TABLE_KEYS = ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes", "LocalSecondaryIndexes", "BillingMode")
_DESTINATION_KEYS = ("RoleARN", "BucketARN", "Prefix", "ErrorOutputPrefix", "BufferingHints", "CompressionFormat")


def provision(stack: TwinStack, client: Callable[[str], Any]) -> dict[str, list[str]]:
    kinds = ("buckets", "tables", "delivery_streams", "glue_databases", "glue_jobs", "topics", "model_package_groups",
             "state_machines")  # fmt: skip
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
    return {kind: sorted(names) for kind, names in out.items()}


def _job_request(props: dict[str, Any]) -> dict[str, Any]:
    keys = ("Name", "Role", "Command", "DefaultArguments", "GlueVersion", "WorkerType", "NumberOfWorkers",
            "Timeout", "MaxRetries", "ExecutionProperty", "Description")  # fmt: skip
    return {k: props[k] for k in keys if k in props}
