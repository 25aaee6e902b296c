"""EncoreStack: composes the capabilities, grants each function exactly what it uses, and records the
cdk-nag findings it accepts with the reason for each."""

from __future__ import annotations

from aws_cdk import ArnFormat, CfnOutput, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from cdk_app.api import ApiConstruct
from cdk_app.bundling import LAMBDA_PYTHON, dependencies_layer_code, shared_layer_code
from cdk_app.data_lake import DataLakeConstruct
from cdk_app.features import FeaturesConstruct
from cdk_app.functions import RUNTIME, EncoreFunction, config_environment
from cdk_app.iam import allow_metrics
from cdk_app.ingestion import IngestionConstruct
from cdk_app.model import ModelConstruct
from cdk_app.monitoring import MonitoringConstruct
from cdk_app.nag import acknowledge_findings
from cdk_app.network import NetworkConstruct
from cdk_app.pipeline import PipelineConstruct
from cdk_app.site import SiteConstruct
from cdk_app.tables import TablesConstruct
from encore.config import EncoreConfig
from encore.operations import PIPELINES_VARIABLE


class EncoreStack(Stack):
    def __init__(self, scope: Construct, id: str, *, config: EncoreConfig, **kwargs: object) -> None:
        super().__init__(scope, id, description="Encore: serverless music recommendations", **kwargs)  # type: ignore[arg-type]
        self.config = config
        self.key = self._build_key()
        self.lake = DataLakeConstruct(self, "DataLake", config=config, key=self.key)
        self.tables = TablesConstruct(self, "Tables", config=config, key=self.key)
        self.ingestion = IngestionConstruct(self, "Ingestion", config=config, bucket=self.lake.bucket, key=self.key)
        self.network = NetworkConstruct(self, "Network", config=config, key=self.key)
        self.monitoring = MonitoringConstruct(self, "Monitoring", config=config, key=self.key)

        layers: list[lambda_.ILayerVersion] = [
            lambda_.LayerVersion(
                self,
                "SharedLibrary",
                code=shared_layer_code(),
                compatible_runtimes=[RUNTIME],
                description="encore: contracts, configuration, scoring, data access",
            ),
            lambda_.LayerVersion(
                self,
                "Dependencies",
                code=dependencies_layer_code(),
                compatible_runtimes=[RUNTIME],
                description=f"third-party packages for CPython {LAMBDA_PYTHON} (manylinux wheels)",
            ),
        ]
        environment = config_environment(config, {"lake_bucket": self.lake.bucket.bucket_name}, self.network.cache_url)
        self.api = ApiConstruct(
            self,
            "Api",
            config=config,
            layers=layers,
            environment=environment,
            vpc=self.network.vpc,
            security_group=self.network.functions_sg,
        )
        self.features = FeaturesConstruct(
            self,
            "Features",
            config=config,
            bucket=self.lake.bucket,
            key=self.key,
            table_arns=[self.tables.tracks.table_arn, self.tables.users.table_arn, self.tables.charts.table_arn],
        )
        self.model = ModelConstruct(
            self, "Model", config=config, bucket=self.lake.bucket, key=self.key, layers=layers, environment=environment
        )
        self.pipeline = PipelineConstruct(
            self,
            "Pipeline",
            config=config,
            bucket=self.lake.bucket,
            jobs=self.features.jobs,
            model=self.model,
            alarm_topic=self.monitoring.topic,
            key=self.key,
        )
        self.ingestion.collect_impressions(self.api.functions.serving.log_group)
        self.ops = self._build_operations(layers)
        self.site = SiteConstruct(
            self,
            "Site",
            config=config,
            api=self.api.api,
            access_logs=self.lake.access_logs,
        )
        self._grant()
        self.monitoring.watch(
            api=self.api.api,
            functions=[
                self.api.functions.events,
                self.api.functions.serving,
                self.ops,
                self.model.gate,
                self.model.deploy,
                self.model.judge,
            ],
            stream=self.ingestion.stream,
            jobs=self.features.jobs,
            machines=[self.pipeline.nightly, self.pipeline.charts],
        )
        self._outputs()
        acknowledge_findings(self)

    def _build_key(self) -> kms.Key:
        key = kms.Key(
            self,
            "DataKey",
            description="Encore data: lake, tables, stream, cache, topic, Glue",
            enable_key_rotation=True,
            alias=f"alias/{self.config.name_prefix}-data",
            removal_policy=RemovalPolicy.RETAIN if self.config.deploy.retain_data else RemovalPolicy.DESTROY,
        )
        # Services that encrypt with the key on their own behalf: alarms and events publishing to the encrypted
        # topic, and CloudWatch Logs for Glue's encrypted job logs.
        for sid, principal in (
            ("CloudWatchAlarms", "cloudwatch.amazonaws.com"),
            ("EventBridge", "events.amazonaws.com"),
        ):
            key.add_to_resource_policy(
                iam.PolicyStatement(
                    sid=sid,
                    principals=[iam.ServicePrincipal(principal)],
                    actions=["kms:Decrypt", "kms:GenerateDataKey"],
                    resources=["*"],  # in a key policy "*" means this key
                    conditions={"StringEquals": {"aws:SourceAccount": self.account}},
                )
            )
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="GlueJobLogs",
                principals=[iam.ServicePrincipal(f"logs.{self.region}.amazonaws.com")],
                actions=[
                    "kms:Encrypt",
                    "kms:Decrypt",
                    "kms:ReEncryptFrom",
                    "kms:ReEncryptTo",
                    "kms:GenerateDataKey",
                    "kms:DescribeKey",
                ],
                resources=["*"],  # in a key policy "*" means this key
                conditions={"ArnLike": {"kms:EncryptionContext:aws:logs:arn": self._logs_arn_pattern}},
            )
        )
        return key

    def _build_operations(self, layers: list[lambda_.ILayerVersion]) -> EncoreFunction:
        """The operations view's function: outside the VPC (it reads the lake and Step Functions, not the cache),
        with read access to the model records and the two pipelines' executions only."""
        machines = {"nightly": self.pipeline.nightly, "charts": self.pipeline.charts}
        environment = config_environment(self.config, {"lake_bucket": self.lake.bucket.bucket_name}, None)
        environment[PIPELINES_VARIABLE] = self.to_json_string({k: m.state_machine_arn for k, m in machines.items()})
        ops = EncoreFunction(
            self.api,
            "Ops",
            config=self.config,
            folder="ops",
            handler="handler.lambda_handler",
            description="GET /v1/ops/*: the serving model, the gate's decisions, the pipelines' executions",
            layers=layers,
            environment=environment,
        )
        models = self.config.lake.models
        self.lake.bucket.grant_read(ops.role, f"{models}decisions/*")
        self.lake.bucket.grant_read(ops.role, f"{models}serving.json")
        ops.role.add_to_policy(
            iam.PolicyStatement(
                sid="ListPipelineExecutions",
                actions=["states:ListExecutions"],
                resources=[m.state_machine_arn for m in machines.values()],
            )
        )
        ops.role.add_to_policy(
            iam.PolicyStatement(
                sid="DescribeFailedExecutions",
                actions=["states:DescribeExecution"],
                resources=[
                    self.format_arn(
                        service="states",
                        resource="execution",
                        resource_name=f"{name}:*",
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                    for name in self.pipeline.names.values()
                ],
            )
        )
        self.api.integrate("ops", ops)
        return ops

    @property
    def _logs_arn_pattern(self) -> str:
        return f"arn:{self.partition}:logs:{self.region}:{self.account}:*"

    def _grant(self) -> None:
        events, serving = self.api.functions.events, self.api.functions.serving
        tables = self.tables
        self.ingestion.stream.grant_put_records(events.role)
        tables.users.grant_read_write_data(events.role)  # recently played on the profile
        tables.tracks.grant_read_data(events.role)  # track vectors for the session EMA
        tables.idempotency.grant_read_write_data(events.role)
        tables.users.grant_read_write_data(serving.role)  # PUT and DELETE /v1/users/{id}
        tables.tracks.grant_read_data(serving.role)
        tables.charts.grant_read_data(serving.role)
        # DELETE /v1/users/{id}: the listener's idempotency records (through the listener index) and the purge request
        tables.idempotency.grant(serving.role, "dynamodb:Query", "dynamodb:BatchWriteItem")
        if tables.idempotency.encryption_key is not None:  # a Query reads the table's customer managed key
            tables.idempotency.encryption_key.grant(serving.role, "kms:Decrypt", "kms:DescribeKey")
        self.lake.bucket.grant_put(serving.role, f"{self.config.lake.deletions}*")
        # which online test runs (encore.experiment.LiveTestReader), read once a minute per instance
        self.lake.bucket.grant_read(serving.role, f"{self.config.lake.models}serving.json")
        serving.role.add_to_policy(
            iam.PolicyStatement(
                sid="InvokeTheEndpoint",
                actions=["sagemaker:InvokeEndpoint"],
                resources=[
                    self.format_arn(
                        service="sagemaker", resource="endpoint", resource_name=self.config.resources.endpoint_name
                    )
                ],
            )
        )
        for fn in (events, serving, self.model.gate, self.model.deploy):
            allow_metrics(fn.role, "EmbeddedMetrics", "Encore")

    def _outputs(self) -> None:
        CfnOutput(self, "ApiUrl", value=self.api.api.url, description="base URL of the API (add v1/...)")
        CfnOutput(
            self,
            "ApiKeyId",
            value=self.api.api_key.key_id,
            description="aws apigateway get-api-key --include-value --api-key <id>",
        )
        CfnOutput(
            self,
            "SiteUrl",
            value=f"https://{self.site.distribution.distribution_domain_name}/",
            description="the web app (player, charts, operations); /v1/* there reaches the API with the site's key",
        )
        CfnOutput(self, "LakeBucket", value=self.lake.bucket.bucket_name)
        CfnOutput(self, "CacheEndpoint", value=self.network.cache.attr_endpoint_address)
        CfnOutput(self, "PipelineArn", value=self.pipeline.nightly.state_machine_arn)
        CfnOutput(self, "AlarmTopicArn", value=self.monitoring.topic.topic_arn)
