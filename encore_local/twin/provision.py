"""Create the application's resources in the twin's emulated AWS, from the same configuration as the stack."""

from __future__ import annotations

from encore.clients import get_client
from encore.config import EncoreConfig
from encore.resources import table_specs


def provision(config: EncoreConfig) -> dict[str, list[str]]:
    """Lake bucket, DynamoDB tables, the Firehose delivery stream into the raw prefix, the Glue database.

    Idempotent: what exists already is left as it is. Returns what exists afterwards, by kind.
    """
    names = config.resources
    s3 = get_client("s3", config.region)
    existing_buckets = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if names.lake_bucket not in existing_buckets:
        s3.create_bucket(Bucket=names.lake_bucket)

    ddb = get_client("dynamodb", config.region)
    existing_tables = set(ddb.list_tables()["TableNames"])
    for spec in table_specs(config).values():
        if spec.name in existing_tables:
            continue
        ddb.create_table(**spec.create_table_kwargs())
        if spec.ttl_attribute:
            ddb.update_time_to_live(
                TableName=spec.name, TimeToLiveSpecification={"Enabled": True, "AttributeName": spec.ttl_attribute}
            )

    firehose = get_client("firehose", config.region)
    if names.delivery_stream not in firehose.list_delivery_streams()["DeliveryStreamNames"]:
        firehose.create_delivery_stream(
            DeliveryStreamName=names.delivery_stream,
            DeliveryStreamType="DirectPut",
            ExtendedS3DestinationConfiguration={
                "RoleARN": "arn:aws:iam::123456789012:role/encore-twin-firehose",
                "BucketARN": f"arn:aws:s3:::{names.lake_bucket}",
                "Prefix": config.lake.raw_events,
                "ErrorOutputPrefix": config.lake.raw_errors,
                "BufferingHints": {"SizeInMBs": 64, "IntervalInSeconds": 60},
                "CompressionFormat": "GZIP",
            },
        )

    glue = get_client("glue", config.region)
    databases = {d["Name"] for d in glue.get_databases()["DatabaseList"]}
    if names.glue_database not in databases:
        glue.create_database(DatabaseInput={"Name": names.glue_database, "Description": "Encore data lake"})

    sagemaker = get_client("sagemaker", config.region)
    groups = {g["ModelPackageGroupName"] for g in sagemaker.list_model_package_groups()["ModelPackageGroupSummaryList"]}
    if names.model_package_group not in groups:
        sagemaker.create_model_package_group(ModelPackageGroupName=names.model_package_group)

    return {
        "buckets": [names.lake_bucket],
        "tables": sorted(spec.name for spec in table_specs(config).values()),
        "delivery_streams": [names.delivery_stream],
        "glue_databases": [names.glue_database],
        "model_package_groups": [names.model_package_group],
    }
