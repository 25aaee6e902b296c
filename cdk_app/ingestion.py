"""Kinesis Data Firehose into the lake's raw prefixes (GZIP JSON lines, by UTC hour): listening events, and the
impressions the serving function writes to its log (a CloudWatch Logs subscription filter feeds that stream)."""

from __future__ import annotations

from aws_cdk import Duration, Size
from aws_cdk import aws_kinesisfirehose as firehose
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_logs_destinations as destinations
from aws_cdk import aws_s3 as s3
from constructs import Construct

from cdk_app.functions import log_group
from encore.config import EncoreConfig
from encore.impressions import FILTER_PATTERN

# Firehose takes CloudWatch Logs' records (gzipped batches of log events) apart itself: each impression line
# becomes one record of the delivered file, followed by a newline.
CLOUDWATCH_LOGS_PROCESSING = {
    "Enabled": True,
    "Processors": [
        {"Type": "Decompression", "Parameters": [{"ParameterName": "CompressionFormat", "ParameterValue": "GZIP"}]},
        {
            "Type": "CloudWatchLogProcessing",
            "Parameters": [{"ParameterName": "DataMessageExtraction", "ParameterValue": "true"}],
        },
        {"Type": "AppendDelimiterToRecord", "Parameters": []},
    ],
}


class IngestionConstruct(Construct):
    def __init__(self, scope: Construct, id: str, *, config: EncoreConfig, bucket: s3.IBucket, key: kms.IKey) -> None:
        super().__init__(scope, id)
        self.config, self.bucket, self.key = config, bucket, key
        self.log_group = log_group(self, "DeliveryLogs", config)
        self.stream = self._stream("Events", config.resources.delivery_stream, config.lake.raw_events, self.log_group)
        self.impressions = self._stream(
            "Impressions",
            config.resources.impressions_stream,
            config.lake.raw_impressions,
            log_group(
                self, "ImpressionsDeliveryLogs", config
            ),  # Firehose names its stream in a group after the S3 part
        )
        raw = self.impressions.node.default_child
        assert isinstance(raw, firehose.CfnDeliveryStream)
        raw.add_property_override(
            "ExtendedS3DestinationConfiguration.ProcessingConfiguration", CLOUDWATCH_LOGS_PROCESSING
        )

    def _stream(self, id: str, name: str, prefix: str, delivery_logs: logs.ILogGroup) -> firehose.DeliveryStream:
        lake, deploy = self.config.lake, self.config.deploy
        destination = firehose.S3Bucket(
            self.bucket,
            data_output_prefix=f"{prefix}!{{timestamp:yyyy/MM/dd/HH}}/",
            error_output_prefix=f"{lake.raw_errors}!{{firehose:error-output-type}}/!{{timestamp:yyyy/MM/dd}}/",
            compression=firehose.Compression.GZIP,
            buffering_interval=Duration.seconds(deploy.firehose_buffer_seconds),
            buffering_size=Size.mebibytes(deploy.firehose_buffer_mb),
            encryption_key=self.key,
            logging_config=firehose.EnableLogging(delivery_logs),
        )
        return firehose.DeliveryStream(
            self,
            id,
            delivery_stream_name=name,
            destination=destination,
            encryption=firehose.StreamEncryption.customer_managed_key(self.key),
        )

    def collect_impressions(self, group: logs.ILogGroup) -> logs.SubscriptionFilter:
        """Send the impression lines of a function's log group to the impressions stream."""
        return logs.SubscriptionFilter(
            self,
            "ImpressionLines",
            log_group=group,
            destination=destinations.FirehoseDestination(self.impressions),
            filter_pattern=logs.FilterPattern.literal(FILTER_PATTERN),
            filter_name="encore-impressions",
        )
