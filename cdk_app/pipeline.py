"""Step Functions: the nightly retraining pipeline and the 15-minute charts refresh, on EventBridge Scheduler.

The states are built from ``encore.pipeline.nightly`` / ``CHARTS_REFRESH``. The twin executes the definitions
synthesized here (``encore_local.twin.stepfunctions``), not a description of them.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import jsii
from aws_cdk import BundlingOptions, BundlingOutput, DockerImage, Duration, ILocalBundling, Size, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_glue as glue
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as assets
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as targets
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from cdk_app.bundling import ROOT
from cdk_app.functions import log_group
from cdk_app.model import ModelConstruct
from encore.config import EncoreConfig
from encore.pipeline import CHARTS_REFRESH, PipelineStep, nightly

# The error a Glue task raises when its job is already running as often as the job allows.
GLUE_BUSY = "Glue.ConcurrentRunsExceededException"
# What the deploy and judge steps raise while the endpoint is still being updated (encore.endpoint.EndpointBusy).
ENDPOINT_BUSY = "EndpointBusy"
# What train.py reports as ``[metric] <name>=<value>`` (train.print_metrics).
TRAINING_METRICS = ("ndcg_at_10", "recall_at_10", "hit_rate_at_10", "coverage")


@jsii.implements(ILocalBundling)
class _SourceTarball:
    """SageMaker script mode wants its source as ``sourcedir.tar.gz``, not the zip an asset would make."""

    def try_bundle(self, output_dir: str, *, image: DockerImage, **_: object) -> bool:
        with tarfile.open(Path(output_dir) / "sourcedir.tar.gz", "w:gz") as tar:
            for path in sorted((ROOT / "sagemaker").iterdir()):
                if path.name != "__pycache__":
                    tar.add(path, arcname=path.name, filter=lambda t: None if "__pycache__" in t.name else t)
        return True


class S3Uri(tasks.S3Location):
    """An ``s3://bucket/prefix`` URI. CDK's ``S3Location.from_bucket`` renders a path-style HTTPS URL, which
    SageMaker's CreateTrainingJob refuses for channels and the output path."""

    def __init__(self, bucket: s3.IBucket, prefix: str) -> None:
        super().__init__()
        self.bucket, self.prefix = bucket, prefix

    def bind(
        self, task: tasks.ISageMakerTask, *, for_reading: bool | None = None, for_writing: bool | None = None
    ) -> tasks.S3LocationConfig:
        if for_reading:
            self.bucket.grant_read(task, f"{self.prefix}*")
        if for_writing:
            self.bucket.grant_put(task, f"{self.prefix}*")
        return tasks.S3LocationConfig(uri=self.bucket.s3_url_for_object(self.prefix))


class PipelineConstruct(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: EncoreConfig,
        bucket: s3.IBucket,
        jobs: dict[str, glue.CfnJob],
        model: ModelConstruct,
        alarm_topic: sns.ITopic,
        key: kms.IKey,
    ) -> None:
        super().__init__(scope, id)
        self.config, self.bucket, self.jobs, self.model, self.topic = config, bucket, jobs, model, alarm_topic
        self.source = assets.Asset(
            self,
            "TrainingSource",
            path=str(ROOT / "sagemaker"),
            bundling=BundlingOptions(
                image=DockerImage.from_registry("local-bundling-only"),
                local=_SourceTarball(),
                output_type=BundlingOutput.ARCHIVED,
            ),
        )
        self.source.grant_read(model.training_role)
        self.names = {"nightly": config.resources.state_machine, "charts": f"{config.resources.state_machine}-charts"}
        steps = nightly(config.batch.enabled)
        self.nightly = self._build_state_machine("Nightly", self.names["nightly"], steps, Duration.hours(6))
        self.charts = self._build_state_machine("Charts", self.names["charts"], CHARTS_REFRESH, Duration.minutes(30))
        for machine in (self.nightly, self.charts):
            # Publishing to the KMS-encrypted alarm topic needs the key as well as sns:Publish.
            key.grant(machine, "kms:GenerateDataKey", "kms:Decrypt")
        self._build_schedules()

    # -- states ------------------------------------------------------------------------------------------------

    def _glue(self, scope: Construct, step: PipelineStep) -> sfn.TaskStateBase:
        task = tasks.GlueStartJobRun(
            scope,
            step.name,
            glue_job_name=self.jobs[step.name].ref,
            integration_pattern=sfn.IntegrationPattern.RUN_JOB,
            arguments=sfn.TaskInput.from_object(self._glue_arguments(step)),
            result_path=sfn.JsonPath.DISCARD,
            task_timeout=sfn.Timeout.duration(Duration.hours(2)),
        )
        # The nightly run and the 15-minute charts refresh share the curate and charts jobs, which run one at a
        # time: wait for the other run to finish (waits of 1 min x 1.5^n, 49 minutes in all) instead of failing.
        task.add_retry(
            errors=[GLUE_BUSY],
            interval=Duration.minutes(1),
            backoff_rate=1.5,
            max_attempts=8,
        )
        return task

    @staticmethod
    def _glue_arguments(step: PipelineStep) -> dict[str, str]:
        # load_vectors reads which model is the champion from the serving record itself
        return {"--run_time": sfn.JsonPath.string_at("$$.Execution.StartTime")}

    def _train(self, scope: Construct, step: PipelineStep) -> sfn.TaskStateBase:
        lake, endpoint = self.config.lake, self.config.deploy.endpoint

        def channel(name: str, table: str) -> tasks.Channel:
            return tasks.Channel(
                channel_name=name,
                data_source=tasks.DataSource(
                    s3_data_source=tasks.S3DataSource(
                        s3_location=S3Uri(self.bucket, f"{lake.features}{table}/"),
                        s3_data_type=tasks.S3DataType.S3_PREFIX,
                    )
                ),
            )

        return tasks.SageMakerCreateTrainingJob(
            scope,
            step.name,
            # .sync: wait for the job and return DescribeTrainingJob's answer, which has the artifact's location
            integration_pattern=sfn.IntegrationPattern.RUN_JOB,
            training_job_name=sfn.JsonPath.format("encore-{}", sfn.JsonPath.string_at("$$.Execution.Name")),
            role=self.model.training_role,
            algorithm_specification=tasks.AlgorithmSpecification(
                training_image=tasks.DockerImage.from_registry(self.model.image_uri),
                training_input_mode=tasks.InputMode.FILE,
                metric_definitions=[
                    tasks.MetricDefinition(name=n, regex=rf"\[metric\] {n}=([0-9.]+)")  # train.print_metrics
                    for n in TRAINING_METRICS
                ],
            ),
            input_data_config=[
                channel("interactions", "interactions"),
                channel("tracks", "tracks"),
                channel("transitions", "transitions"),
            ],
            output_data_config=tasks.OutputDataConfig(s3_output_location=S3Uri(self.bucket, lake.models)),
            resource_config=tasks.ResourceConfig(
                instance_count=1,
                instance_type=ec2.InstanceType(endpoint.training_instance_type.removeprefix("ml.")),
                volume_size=Size.gibibytes(30),
            ),
            stopping_condition=tasks.StoppingCondition(max_runtime=Duration.hours(2)),
            hyperparameters={
                "sagemaker_program": "train.py",
                "sagemaker_submit_directory": self.source.s3_object_url,
                # the rankers learn and the evaluation scores with the blend serving uses (train.py --weights)
                "weights": self.config.weights.as_training_argument(),
            },
            result_selector={
                "model_data": sfn.JsonPath.string_at("$.ModelArtifacts.S3ModelArtifacts"),
                "training_job": sfn.JsonPath.string_at("$.TrainingJobName"),
            },
            result_path="$.train",
        )

    def _gate(self, scope: Construct, step: PipelineStep) -> sfn.TaskStateBase:
        return tasks.LambdaInvoke(
            scope,
            step.name,
            lambda_function=self.model.gate.function,
            payload=sfn.TaskInput.from_json_path_at("$.train"),
            result_selector={"decision": sfn.JsonPath.object_at("$.Payload")},
            result_path="$.gate",
            retry_on_service_exceptions=True,
        )

    def _endpoint_step(self, scope: Construct, step: PipelineStep) -> sfn.TaskStateBase:
        """Deploy (the gate's decision) or judge (the online test): both change the endpoint, which takes one
        update at a time; while one is under way they wait (2 min x 1.5^n, 40 minutes in all) and try again."""
        function, payload = (
            (self.model.deploy, sfn.TaskInput.from_json_path_at("$.gate.decision"))
            if step.name == "deploy"
            else (self.model.judge, sfn.TaskInput.from_object({}))
        )
        task = tasks.LambdaInvoke(
            scope,
            step.name,
            lambda_function=function.function,
            payload=payload,
            result_selector={"endpoint" if step.name == "deploy" else "judgment": sfn.JsonPath.object_at("$.Payload")},
            result_path=f"$.{step.name}",
            retry_on_service_exceptions=True,
        )
        task.add_retry(errors=[ENDPOINT_BUSY], interval=Duration.minutes(2), backoff_rate=1.5, max_attempts=5)
        return task

    def _wait_in_service(self, scope: Construct, next_state: sfn.IChainable, notify: sfn.IChainable) -> sfn.Wait:
        """Deploying returns at once; poll DescribeEndpoint until the update has finished. A failed update rolls
        the endpoint back to the old configuration and it is InService again: only InService *with the new
        configuration* lets the pipeline go on to load the new model's vectors."""
        wait = sfn.Wait(scope, "wait for endpoint", time=sfn.WaitTime.duration(Duration.seconds(60)))
        describe = tasks.CallAwsService(
            scope,
            "describe endpoint",
            service="sagemaker",
            action="describeEndpoint",
            parameters={"EndpointName": self.config.resources.endpoint_name},
            iam_resources=[
                Stack.of(self).format_arn(
                    service="sagemaker", resource="endpoint", resource_name=self.config.resources.endpoint_name
                )
            ],
            result_selector={
                "status": sfn.JsonPath.string_at("$.EndpointStatus"),
                "config": sfn.JsonPath.string_at("$.EndpointConfigName"),
            },
            result_path="$.endpoint_status",
        )
        status = "$.endpoint_status.status"
        serving_new = sfn.Condition.and_(
            sfn.Condition.string_equals(status, "InService"),
            sfn.Condition.string_equals_json_path("$.endpoint_status.config", "$.deploy.endpoint.endpoint_config"),
        )
        not_updated = sfn.Pass(
            scope,
            "endpoint kept the old model",
            result=sfn.Result.from_object(
                {"Error": "EndpointUpdateFailed", "Cause": "the endpoint update failed or was rolled back"}
            ),
            result_path="$.error",
        ).next(notify)
        done = (
            sfn.Choice(scope, "endpoint in service?")
            .when(serving_new, next_state)
            .when(
                sfn.Condition.or_(
                    sfn.Condition.string_equals(status, "InService"),
                    sfn.Condition.string_equals(status, "Failed"),
                    sfn.Condition.string_equals(status, "UpdateRollbackFailed"),
                ),
                not_updated,
            )
            .otherwise(wait)
        )
        wait.next(describe).next(done)
        return wait

    # -- machines ----------------------------------------------------------------------------------------------

    def _build_state_machine(
        self, id: str, name: str, steps: tuple[PipelineStep, ...], timeout: Duration
    ) -> sfn.StateMachine:
        scope = Construct(self, id)
        failed = sfn.Fail(scope, "failed", cause="a pipeline step failed; see the execution history")
        notify = tasks.SnsPublish(
            scope,
            "notify failure",
            topic=self.topic,
            message=sfn.TaskInput.from_object(
                {
                    "pipeline": name,
                    "execution": sfn.JsonPath.string_at("$$.Execution.Id"),
                    "error": sfn.JsonPath.string_at("$.error.Error"),
                }
            ),
            result_path=sfn.JsonPath.DISCARD,
        ).next(failed)
        done = sfn.Succeed(scope, "done")
        states = [self._state(scope, step) for step in steps]
        for state in states:
            if isinstance(state, sfn.TaskStateBase):
                state.add_catch(notify, result_path="$.error")
        chain: sfn.IChainable = done
        after_deploy: sfn.IChainable = done
        for step, state in reversed(list(zip(steps, states, strict=True))):
            if step.name == "deploy":
                after_deploy = chain
                wait = self._wait_in_service(scope, chain, notify)
                state.next(wait)
            elif step.name == "gate":
                # load_vectors still runs: it loads the champion's vectors if a test promoted one tonight
                kept = sfn.Pass(scope, "kept the serving model", comment="the candidate did not beat the gate")
                kept.next(after_deploy)
                promote = (
                    sfn.Choice(scope, "promote?")
                    .when(sfn.Condition.boolean_equals("$.gate.decision.promote", True), chain)
                    .otherwise(kept)
                )
                state.next(promote)
            else:
                state.next(chain)
            chain = state
        return sfn.StateMachine(
            scope,
            "StateMachine",
            state_machine_name=name,
            definition_body=sfn.DefinitionBody.from_chainable(chain),
            timeout=timeout,
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=log_group(scope, "Logs", self.config), level=sfn.LogLevel.ALL, include_execution_data=False
            ),
        )

    def _state(self, scope: Construct, step: PipelineStep) -> sfn.TaskStateBase:
        if step.kind == "glue":
            return self._glue(scope, step)
        if step.kind == "training":
            return self._train(scope, step)
        return self._gate(scope, step) if step.name == "gate" else self._endpoint_step(scope, step)

    def _build_schedules(self) -> None:
        schedules = self.config.deploy.schedules
        for id, machine, expression in (
            ("NightlySchedule", self.nightly, schedules.nightly_cron),
            ("ChartsSchedule", self.charts, schedules.charts_rate),
        ):
            scheduler.Schedule(
                self,
                id,
                schedule=scheduler.ScheduleExpression.expression(expression),
                target=targets.StepFunctionsStartExecution(machine),
                enabled=schedules.enabled,
                description=f"start {machine.node.id}",
            )
