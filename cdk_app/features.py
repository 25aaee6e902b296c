"""Glue: the lake's database in the Data Catalog and one Spark job per pipeline step that needs Spark.

Each job is its script under ``glue_jobs/`` (arguments and I/O) plus one zip of extra Python files with the
shared library ``encore`` and the Spark transforms and I/O ``encore_spark``.
"""

from __future__ import annotations

import json

from aws_cdk import Stack
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as assets
from constructs import Construct

from cdk_app.bundling import ROOT, glue_library_asset
from cdk_app.iam import allow_log_groups, allow_metrics
from encore.config import EncoreConfig, runtime_values
from encore.pipeline import GLUE_JOBS, PipelineStep, job_name

GLUE_VERSION = "5.1"
# Packages Glue's Python lacks; installed by Glue at job start.
GLUE_PYTHON_MODULES = "pydantic==2.14.3,pydantic-settings==2.16.3"


class FeaturesConstruct(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: EncoreConfig,
        bucket: s3.IBucket,
        key: kms.IKey,
        table_arns: list[str],
    ) -> None:
        super().__init__(scope, id)
        self.config = config
        self.database = glue.CfnDatabase(
            self,
            "Database",
            catalog_id=Stack.of(self).account,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=config.resources.glue_database, description="Encore data lake: curated events and features"
            ),
        )
        self.role = self._build_role(bucket, key, table_arns)
        self.security_configuration = self._build_security_configuration(key)
        library = glue_library_asset(self, "JobLibrary")
        library.grant_read(self.role)
        # The stack's region, not the configuration's default: a job must call the services of its own region.
        values = runtime_values(config, {"lake_bucket": bucket.bucket_name}) | {"region": Stack.of(self).region}
        runtime_config = json.dumps(values)
        self.jobs: dict[str, glue.CfnJob] = {
            step.name: self._build_job(step, library, runtime_config) for step in GLUE_JOBS
        }

    def _build_role(self, bucket: s3.IBucket, key: kms.IKey, table_arns: list[str]) -> iam.Role:
        stack = Stack.of(self)
        role = iam.Role(
            self, "JobRole", assumed_by=iam.ServicePrincipal("glue.amazonaws.com"), description="Encore Glue jobs"
        )
        bucket.grant_read_write(role)
        key.grant_encrypt_decrypt(role)
        db = self.config.resources.glue_database
        role.add_to_policy(
            iam.PolicyStatement(
                sid="CatalogOfTheLakeDatabase",
                actions=[
                    "glue:GetDatabase",
                    "glue:GetTable",
                    "glue:GetTables",
                    "glue:CreateTable",
                    "glue:UpdateTable",
                    "glue:GetPartition",
                    "glue:GetPartitions",
                    "glue:BatchCreatePartition",
                    "glue:CreatePartition",
                    "glue:BatchGetPartition",
                    "glue:UpdatePartition",
                    "glue:BatchUpdatePartition",
                ],
                resources=[
                    f"arn:{stack.partition}:glue:{stack.region}:{stack.account}:catalog",
                    f"arn:{stack.partition}:glue:{stack.region}:{stack.account}:database/{db}",
                    f"arn:{stack.partition}:glue:{stack.region}:{stack.account}:table/{db}/*",
                ],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="LoadTables",
                actions=[
                    "dynamodb:BatchWriteItem",
                    "dynamodb:PutItem",
                    "dynamodb:UpdateItem",
                    "dynamodb:DescribeTable",
                ],
                resources=table_arns,
            )
        )
        allow_log_groups(role, "JobLogs", "/aws-glue/", "logs:AssociateKmsKey")
        allow_metrics(role, "JobMetrics", "Glue", "Encore")  # Encore: attribute_plays' daily figures
        return role

    def _build_security_configuration(self, key: kms.IKey) -> glue.CfnSecurityConfiguration:
        return glue.CfnSecurityConfiguration(
            self,
            "Security",
            name=f"{self.config.name_prefix}-glue",
            encryption_configuration=glue.CfnSecurityConfiguration.EncryptionConfigurationProperty(
                cloud_watch_encryption=glue.CfnSecurityConfiguration.CloudWatchEncryptionProperty(
                    cloud_watch_encryption_mode="SSE-KMS", kms_key_arn=key.key_arn
                ),
                job_bookmarks_encryption=glue.CfnSecurityConfiguration.JobBookmarksEncryptionProperty(
                    job_bookmarks_encryption_mode="CSE-KMS", kms_key_arn=key.key_arn
                ),
                s3_encryptions=[
                    glue.CfnSecurityConfiguration.S3EncryptionProperty(
                        s3_encryption_mode="SSE-KMS", kms_key_arn=key.key_arn
                    )
                ],
            ),
        )

    def _build_job(self, step: PipelineStep, library: assets.Asset, runtime_config: str) -> glue.CfnJob:
        script = assets.Asset(self, f"{step.name}-script", path=str(ROOT / "glue_jobs" / f"{step.name}.py"))
        script.grant_read(self.role)
        deploy = self.config.deploy
        # Bookmarks track DynamicFrame reads; these jobs read with plain Spark, and curation is incremental by its
        # own window (--lookback_days raw days) and idempotent by event_id, so bookmarks would only mislead.
        bookmark = "job-bookmark-disable"
        return glue.CfnJob(
            self,
            step.name,
            name=job_name(self.config.name_prefix, step),
            description=step.description,
            role=self.role.role_arn,
            glue_version=GLUE_VERSION,
            worker_type=deploy.glue_worker_type,
            number_of_workers=deploy.glue_workers,
            timeout=120,
            max_retries=1,
            execution_property=glue.CfnJob.ExecutionPropertyProperty(max_concurrent_runs=1),
            security_configuration=self.security_configuration.ref,
            command=glue.CfnJob.JobCommandProperty(
                name="glueetl", python_version="3", script_location=script.s3_object_url
            ),
            default_arguments={
                "--job-language": "python",
                "--job-bookmark-option": bookmark,
                "--enable-metrics": "true",
                "--enable-observability-metrics": "true",
                "--enable-continuous-cloudwatch-log": "true",
                "--extra-py-files": library.s3_object_url,
                "--additional-python-modules": GLUE_PYTHON_MODULES,
                "--encore_config": runtime_config,
            },
        )
