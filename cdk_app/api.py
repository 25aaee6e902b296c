"""The REST API: API Gateway with API keys and a usage plan in front of two functions.

Two functions, not one per route: ``events`` takes the write path (its own scaling, permissions on Firehose)
and ``serving`` answers every read (shared warm caches, one cold start to pay). Both run in the VPC to reach
the cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_cdk import RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from cdk_app.functions import EncoreFunction, log_group
from encore.config import EncoreConfig
from encore.routes import ROUTES


@dataclass
class ApiFunctions:
    events: EncoreFunction
    serving: EncoreFunction


class ApiConstruct(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: EncoreConfig,
        layers: list[lambda_.ILayerVersion],
        environment: dict[str, str],
        vpc: ec2.IVpc,
        security_group: ec2.ISecurityGroup,
    ) -> None:
        super().__init__(scope, id)
        self.config = config
        self.functions = ApiFunctions(
            events=EncoreFunction(
                self,
                "Events",
                config=config,
                folder="events",
                handler="handler.lambda_handler",
                description="POST /v1/events: validate, send to Firehose, update sessions",
                layers=layers,
                environment=environment,
                vpc=vpc,
                security_groups=[security_group],
            ),
            serving=EncoreFunction(
                self,
                "Serving",
                config=config,
                folder="api",
                handler="handler.lambda_handler",
                description="Encore read API: recommendations, next song, similar, charts, tracks, profiles",
                layers=layers,
                environment=environment,
                vpc=vpc,
                security_groups=[security_group],
            ),
        )
        self.access_logs = log_group(self, "AccessLogs", config)
        self.authorizer = self._build_authorizer() if config.deploy.cognito_auth else None
        self.api = self._build_api()
        self._build_routes()
        self.api_key, self.usage_plan = self._build_usage_plan()

    def _build_api(self) -> apigw.RestApi:
        deploy = self.config.deploy
        return apigw.RestApi(
            self,
            "Api",
            rest_api_name=f"{self.config.name_prefix}-api",
            description="Encore music recommendations",
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=RemovalPolicy.DESTROY,
            endpoint_types=[apigw.EndpointType.REGIONAL],
            deploy_options=apigw.StageOptions(
                stage_name=self.config.stage,
                tracing_enabled=True,
                metrics_enabled=True,
                logging_level=apigw.MethodLoggingLevel.INFO,
                data_trace_enabled=False,  # bodies may carry listener ids: not in execution logs
                access_log_destination=apigw.LogGroupLogDestination(self.access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=False,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=True,
                ),
                throttling_rate_limit=deploy.api_rate_limit * 5,
                throttling_burst_limit=deploy.api_burst_limit * 5,
            ),
            default_cors_preflight_options=apigw.CorsOptions(
                allow_origins=list(deploy.cors_origins),
                allow_methods=["GET", "POST", "PUT", "OPTIONS"],
                allow_headers=["Content-Type", "X-Api-Key", "Authorization", "X-Correlation-Id"],
            ),
        )

    def _build_authorizer(self) -> apigw.CognitoUserPoolsAuthorizer:
        pool = cognito.UserPool(
            self,
            "Users",
            self_sign_up_enabled=False,
            password_policy=cognito.PasswordPolicy(
                min_length=12, require_digits=True, require_lowercase=True, require_uppercase=True, require_symbols=True
            ),
            advanced_security_mode=cognito.AdvancedSecurityMode.ENFORCED,
            mfa=cognito.Mfa.REQUIRED,
            mfa_second_factor=cognito.MfaSecondFactor(sms=False, otp=True),
            removal_policy=RemovalPolicy.RETAIN,
        )
        return apigw.CognitoUserPoolsAuthorizer(self, "Authorizer", cognito_user_pools=[pool])

    def _method_options(self, *, api_key: bool) -> dict[str, Any]:
        options: dict[str, Any] = {"api_key_required": api_key, "request_validator": self._validator}
        if self.authorizer is not None and api_key:
            options |= {"authorizer": self.authorizer, "authorization_type": apigw.AuthorizationType.COGNITO}
        return options

    def _build_routes(self) -> None:
        self._validator = apigw.RequestValidator(
            self, "Validator", rest_api=self.api, validate_request_body=True, validate_request_parameters=True
        )
        integrations = {
            "events": apigw.LambdaIntegration(self.functions.events.function),
            "api": apigw.LambdaIntegration(self.functions.serving.function),
        }
        for route in ROUTES:
            resource = self.api.root.resource_for_path(route.path)
            for method in route.methods:
                resource.add_method(method, integrations[route.function], **self._method_options(api_key=route.api_key))

    def _build_usage_plan(self) -> tuple[apigw.IApiKey, apigw.UsagePlan]:
        deploy = self.config.deploy
        plan = self.api.add_usage_plan(
            "UsagePlan",
            name=f"{self.config.name_prefix}-default",
            throttle=apigw.ThrottleSettings(rate_limit=deploy.api_rate_limit, burst_limit=deploy.api_burst_limit),
            quota=apigw.QuotaSettings(limit=deploy.api_quota_per_day, period=apigw.Period.DAY),
        )
        plan.add_api_stage(stage=self.api.deployment_stage)
        key = self.api.add_api_key("DefaultKey", api_key_name=f"{self.config.name_prefix}-default")
        plan.add_api_key(key)
        return key, plan
