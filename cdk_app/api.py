"""The REST API: API Gateway with API keys and a usage plan in front of its functions.

Not one function per route: ``events`` takes the write path (its own scaling, permissions on Firehose) and
``serving`` answers every read about listeners and tracks (shared warm caches, one cold start to pay); both run
in the VPC to reach the cache. The stack adds the ``ops`` function's routes (``integrate``) once the pipelines it
reads exist.

The API key identifies, meters and throttles a client; it is not authorization. Where the stage sets
``serving.write_auth = "cognito"``, the listener routes (``Route.listener`` in ``encore.routes``) also need a
Cognito user-pool JWT. CORS: API Gateway answers the preflights and adds ``Access-Control-Allow-Origin`` to its
own error answers; the functions add it to theirs (``serving.cors_origins`` everywhere).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_cdk import CfnOutput, RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from cdk_app.functions import EncoreFunction, log_group
from encore.config import EncoreConfig
from encore.routes import CORS_ALLOW_HEADERS, CORS_ALLOW_METHODS, ROUTES, Route


def stage_throttle(config: EncoreConfig) -> apigw.ThrottleSettings:
    """The stage's throttle, over all clients: five times one key's (the site's key, shared by every browser, has it
    too)."""
    deploy = config.deploy
    return apigw.ThrottleSettings(rate_limit=deploy.api_rate_limit * 5, burst_limit=deploy.api_burst_limit * 5)


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
        self.authorizer = self._build_authorizer() if config.serving.write_auth == "cognito" else None
        self.api = self._build_api()
        self._build_gateway_responses()
        self._build_routes()
        self.api_key, self.usage_plan = self._build_usage_plan()

    def _build_api(self) -> apigw.RestApi:
        throttle = stage_throttle(self.config)
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
                throttling_rate_limit=throttle.rate_limit,
                throttling_burst_limit=throttle.burst_limit,
            ),
            default_cors_preflight_options=apigw.CorsOptions(
                allow_origins=list(self.config.serving.cors_origins),
                allow_methods=list(CORS_ALLOW_METHODS),
                allow_headers=list(CORS_ALLOW_HEADERS),
            ),
        )

    def _build_gateway_responses(self) -> None:
        """API Gateway's own answers (403 without a key, 401 without a token, 429 throttled, 400 from the request
        validator, its 5xx) with the CORS header, so a browser lets the page read them."""
        origins = self.config.serving.cors_origins
        if not origins:
            return
        headers = {"Access-Control-Allow-Origin": f"'{origins[0]}'"}
        if len(origins) > 1:
            # A gateway response cannot choose among origins; it returns the caller's (these answers carry
            # no data: a message such as "Forbidden"), and says the answer varies with it.
            headers = {"Access-Control-Allow-Origin": "method.request.header.Origin", "Vary": "'Origin'"}
        for name, kind in (
            ("Default4xx", apigw.ResponseType.DEFAULT_4_XX),
            ("Default5xx", apigw.ResponseType.DEFAULT_5_XX),
        ):
            self.api.add_gateway_response(name, type=kind, response_headers=headers)

    def _build_authorizer(self) -> apigw.CognitoUserPoolsAuthorizer:
        pool = cognito.UserPool(
            self,
            "Users",
            self_sign_up_enabled=False,
            password_policy=cognito.PasswordPolicy(
                min_length=12, require_digits=True, require_lowercase=True, require_uppercase=True, require_symbols=True
            ),
            # Threat protection (compromised credentials, adaptive authentication) needs the Plus feature plan,
            # which Cognito prices per monthly active user: a choice of the operator's (docs/deploy.md).
            **self._threat_protection(),
            mfa=cognito.Mfa.REQUIRED,
            mfa_second_factor=cognito.MfaSecondFactor(sms=False, otp=True),
            removal_policy=RemovalPolicy.RETAIN,
        )
        # The web app signs listeners in with this client (SRP: the password never leaves the browser; no secret,
        # as a browser cannot keep one) and sends the ID token as the Authorization header.
        client = pool.add_client(
            "WebApp",
            auth_flows=cognito.AuthFlow(user_srp=True),
            generate_secret=False,
            prevent_user_existence_errors=True,
        )
        for name, value, description in (
            ("UserPoolId", pool.user_pool_id, "Cognito user pool of the listeners"),
            ("UserPoolClientId", client.user_pool_client_id, "the web app's client of that pool"),
        ):
            CfnOutput(self, name, value=value, description=description).override_logical_id(name)  # stack-level name
        self.user_pool, self.user_pool_client = pool, client
        return apigw.CognitoUserPoolsAuthorizer(self, "Authorizer", cognito_user_pools=[pool])

    def _threat_protection(self) -> dict[str, Any]:
        if self.config.deploy.cognito_threat_protection:
            return {
                "feature_plan": cognito.FeaturePlan.PLUS,
                "standard_threat_protection_mode": cognito.StandardThreatProtectionMode.FULL_FUNCTION,
            }
        return {"feature_plan": cognito.FeaturePlan.ESSENTIALS}

    def _method_options(self, route: Route) -> dict[str, Any]:
        options: dict[str, Any] = {"api_key_required": route.api_key, "request_validator": self._validator}
        if self.authorizer is not None and route.listener:
            options |= {"authorizer": self.authorizer, "authorization_type": apigw.AuthorizationType.COGNITO}
        return options

    def _build_routes(self) -> None:
        self._validator = apigw.RequestValidator(
            self, "Validator", rest_api=self.api, validate_request_body=True, validate_request_parameters=True
        )
        self.integrate("events", self.functions.events)
        self.integrate("api", self.functions.serving)

    def integrate(self, folder: str, function: EncoreFunction) -> None:
        """Route the methods the routes table gives the function in ``lambdas/<folder>`` to it."""
        integration = apigw.LambdaIntegration(function.function)
        for route in ROUTES:
            if route.function == folder:
                resource = self.api.root.resource_for_path(route.path)
                for method in route.methods:
                    resource.add_method(method, integration, **self._method_options(route))

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
