"""SageMaker: the training role, the execution role of hosted models, the model package group, and the
function that points the endpoint at a promoted model.

The endpoint itself is created and updated by the pipeline's deploy step, not by CloudFormation: a SageMaker
endpoint cannot exist before a model artifact does, and the artifact is what the pipeline produces. The stack
fixes everything about it (name, serverless or instance hosting, autoscaling bounds, roles, alarms) and the
deploy step applies those settings (see docs/deploy.md).
"""

from __future__ import annotations

import json
from pathlib import Path

from aws_cdk import CfnMapping, CustomResource, Duration, Fn, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from cdk_app.functions import EncoreFunction
from cdk_app.iam import allow_log_groups, allow_metrics
from encore.config import EncoreConfig

# The scikit-learn framework image's registry account per region, as the SageMaker Python SDK lists them.
_IMAGE = json.loads((Path(__file__).parent / "sklearn_image.json").read_text())
AUTOSCALING_SERVICE = "sagemaker.application-autoscaling.amazonaws.com"


class ModelConstruct(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: EncoreConfig,
        bucket: s3.IBucket,
        key: kms.IKey,
        layers: list[lambda_.ILayerVersion],
        environment: dict[str, str],
    ) -> None:
        super().__init__(scope, id)
        self.config, self.bucket, self.key = config, bucket, key
        stack = Stack.of(self)
        self.image_account, self.image_uri = self._image_uri()
        self.training_role = self._build_sagemaker_role("TrainingRole", "Encore training jobs", bucket, key)
        bucket.grant_read_write(self.training_role, f"{config.lake.models}*")
        self.execution_role = self._build_sagemaker_role("ExecutionRole", "Encore hosted model", bucket, key)
        self.package_group = sagemaker.CfnModelPackageGroup(
            self,
            "PackageGroup",
            model_package_group_name=config.resources.model_package_group,
            model_package_group_description="Encore hybrid recommender: promoted models",
        )
        self.gate = EncoreFunction(
            self,
            "Gate",
            config=config,
            folder="pipeline",
            handler="gate.lambda_handler",
            description="Promotion gate: candidate vs serving model and popularity on NDCG@10; registers the winner",
            layers=layers,
            environment={**environment, "ENCORE_MODEL_IMAGE": self.image_uri},
            timeout=Duration.minutes(2),
        )
        bucket.grant_read_write(self.gate.role, f"{config.lake.models}*")
        key.grant_encrypt_decrypt(self.gate.role)
        account, region, partition = stack.account, stack.region, stack.partition
        group_arn = (
            f"arn:{partition}:sagemaker:{region}:{account}:model-package-group/{config.resources.model_package_group}"
        )
        package_arn = (
            f"arn:{partition}:sagemaker:{region}:{account}:model-package/{config.resources.model_package_group}/*"
        )
        self.gate.role.add_to_policy(
            iam.PolicyStatement(
                sid="RegisterPromotedModels",
                actions=[
                    "sagemaker:CreateModelPackage",
                    "sagemaker:ListModelPackages",
                    "sagemaker:DescribeModelPackage",
                ],
                resources=[group_arn, package_arn],
            )
        )
        self.deploy = self._build_endpoint_function(
            "Deploy",
            "deploy.lambda_handler",
            "Put a promoted model on the endpoint: challenger beside the champion, or champion",
            layers,
            environment,
        )
        self.judge = self._build_endpoint_function(
            "Judge",
            "judge.lambda_handler",
            "Decide the online test on play-through: promote the challenger, keep the champion, or wait",
            layers,
            environment,
        )
        self.teardown = self._build_teardown(layers, environment, group_arn, package_arn)

    @property
    def _scalable_targets(self) -> str:
        """Application Auto Scaling's scalable targets: AWS assigns their ids at registration."""
        stack = Stack.of(self)
        return f"arn:{stack.partition}:application-autoscaling:{stack.region}:{stack.account}:scalable-target/*"

    def _endpoint_arns(self) -> list[str]:
        """The endpoint the pipeline makes, and its models and configurations ("<endpoint>-<version>")."""
        stack, name = Stack.of(self), self.config.resources.endpoint_name
        arn = f"arn:{stack.partition}:sagemaker:{stack.region}:{stack.account}"
        return [f"{arn}:endpoint/{name}", f"{arn}:endpoint-config/{name}-*", f"{arn}:model/{name}-*"]

    def _build_teardown(
        self, layers: list[lambda_.ILayerVersion], environment: dict[str, str], group_arn: str, package_arn: str
    ) -> EncoreFunction:
        """On stack deletion: the endpoint the pipeline made, and the model packages where data is not kept."""
        config = self.config
        delete_packages = not config.deploy.retain_data
        self.package_group.apply_removal_policy(
            RemovalPolicy.RETAIN if config.deploy.retain_data else RemovalPolicy.DESTROY
        )
        fn = EncoreFunction(
            self,
            "Teardown",
            config=config,
            folder="teardown",
            handler="handler.lambda_handler",
            description="On stack deletion: delete the pipeline-made endpoint (and model packages in dev)",
            layers=layers,
            environment={**environment, "ENCORE_TEARDOWN_DELETE_PACKAGES": str(delete_packages).lower()},
            timeout=Duration.minutes(5),
        )
        fn.role.add_to_policy(
            iam.PolicyStatement(
                sid="DeleteTheEndpoint",
                actions=["sagemaker:DeleteEndpoint", "sagemaker:DeleteEndpointConfig", "sagemaker:DeleteModel"],
                resources=self._endpoint_arns(),
            )
        )
        fn.role.add_to_policy(
            iam.PolicyStatement(
                sid="FindItsConfigsAndModels",
                actions=["sagemaker:ListEndpointConfigs", "sagemaker:ListModels"],
                resources=["*"],  # List* of SageMaker has no resource type
            )
        )
        fn.role.add_to_policy(
            iam.PolicyStatement(
                sid="DeregisterAutoscaling",
                actions=["application-autoscaling:DeregisterScalableTarget"],
                resources=[self._scalable_targets],
            )
        )
        if delete_packages:
            fn.role.add_to_policy(
                iam.PolicyStatement(
                    sid="DeleteModelPackages",
                    actions=["sagemaker:ListModelPackages", "sagemaker:DeleteModelPackage"],
                    resources=[group_arn, package_arn],
                )
            )
        resource = CustomResource(
            self, "TeardownOnDelete", service_token=fn.function.function_arn, resource_type="Custom::EncoreTeardown"
        )
        # Deleted before the package group (and everything it uses): CloudFormation deletes dependents first.
        resource.node.add_dependency(self.package_group, fn.role)
        return fn

    def _image_uri(self) -> tuple[str, str]:
        mapping = CfnMapping(
            self, "SklearnImage", mapping={r: {"account": a} for r, a in _IMAGE["registries"].items()}, lazy=True
        )
        account = mapping.find_in_map(Stack.of(self).region, "account")
        return account, Fn.join(
            "",
            [
                account,
                ".dkr.ecr.",
                Stack.of(self).region,
                ".",
                Stack.of(self).url_suffix,
                "/",
                _IMAGE["repository"],
                ":",
                _IMAGE["tag"],
            ],
        )

    def _build_sagemaker_role(self, id: str, description: str, bucket: s3.IBucket, key: kms.IKey) -> iam.Role:
        stack = Stack.of(self)
        role = iam.Role(self, id, assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"), description=description)
        bucket.grant_read(role)
        key.grant_encrypt_decrypt(role)
        role.add_to_policy(
            iam.PolicyStatement(
                sid="PullFrameworkImage",
                actions=["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
                resources=[
                    f"arn:{stack.partition}:ecr:{stack.region}:{self.image_account}:repository/{_IMAGE['repository']}"
                ],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="EcrToken",
                actions=["ecr:GetAuthorizationToken"],
                resources=["*"],  # GetAuthorizationToken has no resource type
            )
        )
        allow_log_groups(role, "ContainerLogs", "/aws/sagemaker/", "logs:DescribeLogStreams")
        allow_metrics(role, "ContainerMetrics", "aws/sagemaker/*", "/aws/sagemaker/*")
        return role

    def _build_endpoint_function(
        self, id: str, handler: str, description: str, layers: list[lambda_.ILayerVersion], environment: dict[str, str]
    ) -> EncoreFunction:
        """A pipeline step that changes the endpoint: deploy (makes the promoted version's model) and judge (ends
        an online test by pointing the endpoint at the winner's model, which exists)."""
        config, stack = self.config, Stack.of(self)
        endpoint = config.deploy.endpoint
        deploys = id == "Deploy"
        env = {**environment, "ENCORE_ENDPOINT_SETTINGS": endpoint.model_dump_json()}
        if deploys:
            env |= {"ENCORE_MODEL_IMAGE": self.image_uri, "ENCORE_MODEL_EXECUTION_ROLE": self.execution_role.role_arn}
        fn = EncoreFunction(
            self,
            id,
            config=config,
            folder="pipeline",
            handler=handler,
            description=description,
            layers=layers,
            environment=env,
            timeout=Duration.minutes(2),
            function_name=config.resources.deploy_function if deploys else config.resources.judge_function,
        )
        arn = f"arn:{stack.partition}:sagemaker:{stack.region}:{stack.account}"
        name = config.resources.endpoint_name
        actions = [
            "sagemaker:CreateEndpointConfig",
            "sagemaker:DescribeEndpointConfig",
            "sagemaker:CreateEndpoint",
            "sagemaker:UpdateEndpoint",
            "sagemaker:DescribeEndpoint",
        ]
        if deploys:
            actions += ["sagemaker:CreateModel", "sagemaker:DescribeModel"]
        fn.role.add_to_policy(
            iam.PolicyStatement(sid="ManageTheEndpoint", actions=sorted(actions), resources=self._endpoint_arns())
        )
        self.bucket.grant_read_write(fn.role, f"{config.lake.models}*")  # serving.json, decisions
        self.key.grant_encrypt_decrypt(fn.role)
        if deploys:
            fn.role.add_to_policy(
                iam.PolicyStatement(
                    sid="PassExecutionRole",
                    actions=["iam:PassRole"],
                    resources=[self.execution_role.role_arn],
                    conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
                )
            )
        else:  # the days' attribution rows the test is judged on
            self.bucket.grant_read(fn.role, f"{config.lake.features}attribution_totals/*")
        if endpoint.kind == "instance":
            fn.role.add_to_policy(
                iam.PolicyStatement(
                    sid="EndpointAutoscaling",
                    actions=[
                        "application-autoscaling:RegisterScalableTarget",
                        "application-autoscaling:PutScalingPolicy",
                    ],
                    resources=[self._scalable_targets],
                )
            )
            # What Application Auto Scaling checks of its caller for a SageMaker variant: the target service's
            # calls it makes on the caller's behalf, its service-linked role (created at the first registration),
            # and the CloudWatch alarms a target-tracking policy creates.
            fn.role.add_to_policy(
                iam.PolicyStatement(
                    sid="ScaleTheEndpointVariant",
                    actions=["sagemaker:UpdateEndpointWeightsAndCapacities", "sagemaker:DescribeEndpointConfig"],
                    resources=[f"{arn}:endpoint/{name}", f"{arn}:endpoint-config/{name}-*"],
                )
            )
            fn.role.add_to_policy(
                iam.PolicyStatement(
                    sid="TargetTrackingAlarms",
                    actions=["cloudwatch:PutMetricAlarm", "cloudwatch:DescribeAlarms", "cloudwatch:DeleteAlarms"],
                    resources=[
                        f"arn:{stack.partition}:cloudwatch:{stack.region}:{stack.account}:alarm:"
                        f"TargetTracking-endpoint/{name}/*"
                    ],
                )
            )
            fn.role.add_to_policy(
                iam.PolicyStatement(
                    sid="AutoscalingServiceLinkedRole",
                    actions=["iam:CreateServiceLinkedRole"],
                    resources=[
                        f"arn:{stack.partition}:iam::{stack.account}:role/aws-service-role/"
                        f"{AUTOSCALING_SERVICE}/AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
                    ],
                    conditions={"StringLike": {"iam:AWSServiceName": AUTOSCALING_SERVICE}},
                )
            )
            fn.role.add_to_policy(
                iam.PolicyStatement(
                    sid="AutoscalingDescribe",
                    actions=["application-autoscaling:DescribeScalableTargets"],
                    resources=["*"],  # Describe* of Application Auto Scaling has no resource type
                )
            )
        return fn
