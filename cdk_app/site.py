"""The web app in AWS: ``webapp/`` in a private bucket behind CloudFront, and ``/v1/*`` on the same distribution
forwarded to API Gateway, so the page talks to one origin and never holds the API key.

- The bucket blocks all public access; CloudFront reads it through origin access control (the bucket policy
  names the distribution). ``BucketDeployment`` publishes the files on each deploy and invalidates the cache.
- Every answer, the API's included, gets the site's security headers (``encore.site``) from a response headers
  policy. Viewers are redirected to HTTPS.
- ``/v1/*`` is not cached and reaches the API with every viewer header except Host, plus ``x-api-key``: the
  site's own key, whose value is generated into Secrets Manager and given to both the API key and the origin
  header by CloudFormation dynamic reference (neither the template nor the page contains it). That key has a
  usage plan of its own, sized for the whole site rather than for one client.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from cdk_app.api import stage_throttle
from encore.config import EncoreConfig
from encore.site import API_KEY_HEADER, API_PREFIX, CONTENT_SECURITY_POLICY, HSTS_MAX_AGE_S

WEBAPP = Path(__file__).resolve().parents[1] / "webapp"


class SiteConstruct(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: EncoreConfig,
        api: apigw.RestApi,
        access_logs: s3.IBucket,
    ) -> None:
        super().__init__(scope, id)
        self.config = config
        self.bucket = s3.Bucket(
            self,
            "Files",
            encryption=s3.BucketEncryption.S3_MANAGED,  # public content; OAC reads SSE-S3 without a key policy
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            server_access_logs_bucket=access_logs,
            server_access_logs_prefix="site/",
            removal_policy=RemovalPolicy.DESTROY,  # no data: rebuilt from webapp/ on every deploy, in every stage
            auto_delete_objects=True,
        )
        self.key_secret = secretsmanager.Secret(
            self,
            "ApiKeyValue",
            description=f"the API key CloudFront adds to {API_PREFIX}* for the web app ({config.stage})",
            generate_secret_string=secretsmanager.SecretStringGenerator(exclude_punctuation=True, password_length=40),
        )
        # A dynamic reference ({{resolve:secretsmanager:...}}), resolved by CloudFormation at deploy time.
        key_value = self.key_secret.secret_value.unsafe_unwrap()
        self.api_key = self._site_key(api, key_value)
        self.headers = self._headers_policy()
        self.distribution = self._distribution(api, key_value, access_logs)
        s3deploy.BucketDeployment(
            self,
            "Publish",
            sources=[s3deploy.Source.asset(str(WEBAPP))],
            destination_bucket=self.bucket,
            distribution=self.distribution,
            distribution_paths=["/*"],
            prune=True,
            memory_limit=256,
        )

    def _site_key(self, api: apigw.RestApi, value: str) -> apigw.IApiKey:
        key = api.add_api_key("SiteKey", api_key_name=f"{self.config.name_prefix}-site", value=value)
        plan = api.add_usage_plan(
            "SiteUsagePlan",
            name=f"{self.config.name_prefix}-site",
            description="every browser of the web app shares this key: the stage's own limits, no daily quota",
            throttle=stage_throttle(self.config),
        )
        plan.add_api_stage(stage=api.deployment_stage)
        plan.add_api_key(key)
        return key

    def _headers_policy(self) -> cloudfront.ResponseHeadersPolicy:
        return cloudfront.ResponseHeadersPolicy(
            self,
            "Headers",
            comment=f"Encore web app security headers ({self.config.stage})",
            security_headers_behavior=cloudfront.ResponseSecurityHeadersBehavior(
                content_security_policy=cloudfront.ResponseHeadersContentSecurityPolicy(
                    content_security_policy=CONTENT_SECURITY_POLICY, override=True
                ),
                strict_transport_security=cloudfront.ResponseHeadersStrictTransportSecurity(
                    access_control_max_age=Duration.seconds(HSTS_MAX_AGE_S), include_subdomains=True, override=True
                ),
                content_type_options=cloudfront.ResponseHeadersContentTypeOptions(override=True),
                frame_options=cloudfront.ResponseHeadersFrameOptions(
                    frame_option=cloudfront.HeadersFrameOption.DENY, override=True
                ),
                referrer_policy=cloudfront.ResponseHeadersReferrerPolicy(
                    referrer_policy=cloudfront.HeadersReferrerPolicy.STRICT_ORIGIN_WHEN_CROSS_ORIGIN, override=True
                ),
            ),
        )

    def _distribution(self, api: apigw.RestApi, key_value: str, access_logs: s3.IBucket) -> cloudfront.Distribution:
        return cloudfront.Distribution(
            self,
            "Distribution",
            comment=f"Encore web app and API ({self.config.stage})",
            default_root_object="index.html",
            default_behavior=cloudfront.BehaviorOptions(
                origin=origins.S3BucketOrigin.with_origin_access_control(self.bucket),
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
                cache_policy=cloudfront.CachePolicy.CACHING_OPTIMIZED,  # each deploy invalidates /*
                response_headers_policy=self.headers,
            ),
            additional_behaviors={
                f"{API_PREFIX}*": cloudfront.BehaviorOptions(
                    origin=origins.RestApiOrigin(api, custom_headers={API_KEY_HEADER: key_value}),
                    viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.HTTPS_ONLY,
                    allowed_methods=cloudfront.AllowedMethods.ALLOW_ALL,
                    cache_policy=cloudfront.CachePolicy.CACHING_DISABLED,
                    origin_request_policy=cloudfront.OriginRequestPolicy.ALL_VIEWER_EXCEPT_HOST_HEADER,
                    response_headers_policy=self.headers,
                )
            },
            price_class=cloudfront.PriceClass.PRICE_CLASS_100,
            http_version=cloudfront.HttpVersion.HTTP2_AND_3,
            enable_logging=True,
            log_bucket=access_logs,
            log_file_prefix="site-cdn/",
        )
