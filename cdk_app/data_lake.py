"""The data lake: one KMS-encrypted bucket with the raw, curated, features, quarantine and models prefixes,
and the access-log bucket it logs to."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from encore.config import EncoreConfig


class DataLakeConstruct(Construct):
    def __init__(self, scope: Construct, id: str, *, config: EncoreConfig, key: kms.IKey) -> None:
        super().__init__(scope, id)
        self.config = config
        removal = RemovalPolicy.RETAIN if config.deploy.retain_data else RemovalPolicy.DESTROY
        # A stage that does not keep data empties its buckets on deletion (CloudFormation cannot delete a bucket
        # that holds objects or versions); one that keeps data retains them.
        self.auto_delete = not config.deploy.retain_data
        self.access_logs = self._build_access_log_bucket(removal)
        self.bucket = self._build_lake_bucket(key, removal)

    def _build_access_log_bucket(self, removal: RemovalPolicy) -> s3.Bucket:
        # Server access logs cannot be delivered to a KMS-encrypted bucket: S3-managed keys here.
        return s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
            removal_policy=removal,
            auto_delete_objects=self.auto_delete,
            lifecycle_rules=[s3.LifecycleRule(id="expire-access-logs", expiration=Duration.days(365))],
        )

    def _build_lake_bucket(self, key: kms.IKey, removal: RemovalPolicy) -> s3.Bucket:
        lake, deploy = self.config.lake, self.config.deploy
        return s3.Bucket(
            self,
            "Lake",
            encryption=s3.BucketEncryption.KMS,
            encryption_key=key,
            bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="lake/",
            removal_policy=removal,
            auto_delete_objects=self.auto_delete,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="raw-events",
                    prefix=lake.raw_events,
                    transitions=[
                        s3.Transition(
                            storage_class=s3.StorageClass.INFREQUENT_ACCESS, transition_after=Duration.days(30)
                        )
                    ],
                    expiration=Duration.days(deploy.raw_retention_days),
                ),
                s3.LifecycleRule(
                    id="quarantine", prefix=lake.quarantine, expiration=Duration.days(deploy.quarantine_retention_days)
                ),
                s3.LifecycleRule(id="delivery-errors", prefix=lake.raw_errors, expiration=Duration.days(30)),
                s3.LifecycleRule(
                    id="old-versions",
                    noncurrent_version_expiration=Duration.days(30),
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                ),
            ],
        )
