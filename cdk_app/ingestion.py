"""Kinesis Data Firehose: listening events into the lake's raw prefix (GZIP JSON lines, by UTC hour)."""

from __future__ import annotations

from aws_cdk import Duration, Size
from aws_cdk import aws_kinesisfirehose as firehose
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from cdk_app.functions import log_group
from encore.config import EncoreConfig


class IngestionConstruct(Construct):
    def __init__(self, scope: Construct, id: str, *, config: EncoreConfig, bucket: s3.IBucket, key: kms.IKey) -> None:
        super().__init__(scope, id)
        lake, deploy = config.lake, config.deploy
        self.log_group = log_group(self, "DeliveryLogs", config)
        destination = firehose.S3Bucket(
            bucket,
            data_output_prefix=f"{lake.raw_events}!{{timestamp:yyyy/MM/dd/HH}}/",
            error_output_prefix=f"{lake.raw_errors}!{{firehose:error-output-type}}/!{{timestamp:yyyy/MM/dd}}/",
            compression=firehose.Compression.GZIP,
            buffering_interval=Duration.seconds(deploy.firehose_buffer_seconds),
            buffering_size=Size.mebibytes(deploy.firehose_buffer_mb),
            encryption_key=key,
            logging_config=firehose.EnableLogging(self.log_group),
        )
        self.stream = firehose.DeliveryStream(
            self,
            "Events",
            delivery_stream_name=config.resources.delivery_stream,
            destination=destination,
            encryption=firehose.StreamEncryption.customer_managed_key(key),
        )
