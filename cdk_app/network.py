"""The VPC the serving functions and the cache live in, and ElastiCache Serverless (Valkey, TLS).

Private isolated subnets over two AZs: no NAT gateway, nothing reaches the internet. AWS services are reached
through gateway endpoints (S3, DynamoDB) and interface endpoints for what the in-VPC functions call.
"""

from __future__ import annotations

from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticache as elasticache
from aws_cdk import aws_kms as kms
from constructs import Construct

from cdk_app.functions import log_group
from encore.config import EncoreConfig

CACHE_PORT = 6379


class NetworkConstruct(Construct):
    def __init__(self, scope: Construct, id: str, *, config: EncoreConfig, key: kms.IKey) -> None:
        super().__init__(scope, id)
        self.config = config
        self.vpc = self._build_vpc()
        self.functions_sg = ec2.SecurityGroup(
            self, "FunctionsSg", vpc=self.vpc, description="Encore serving functions", allow_all_outbound=False
        )
        self._build_endpoints()
        self.cache_sg, self.cache = self._build_cache(key)

    def _build_vpc(self) -> ec2.Vpc:
        vpc = ec2.Vpc(
            self,
            "Vpc",
            max_azs=2,
            nat_gateways=0,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="private", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=22)
            ],
        )
        flow_logs = log_group(self, "FlowLogs", self.config)
        vpc.add_flow_log("FlowLog", destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_logs))
        return vpc

    def _build_endpoints(self) -> None:
        isolated = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)
        self.vpc.add_gateway_endpoint("S3", service=ec2.GatewayVpcEndpointAwsService.S3, subnets=[isolated])
        self.vpc.add_gateway_endpoint("DynamoDb", service=ec2.GatewayVpcEndpointAwsService.DYNAMODB, subnets=[isolated])
        # HTTPS out to any address: the subnets have no route to the internet, so this reaches only the gateway
        # endpoints (S3 and DynamoDB prefix lists, whose ids differ by region) and the interface endpoints.
        self.functions_sg.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "AWS APIs through VPC endpoints")
        endpoints_sg = ec2.SecurityGroup(
            self, "EndpointsSg", vpc=self.vpc, description="Encore interface endpoints", allow_all_outbound=False
        )
        endpoints_sg.add_ingress_rule(self.functions_sg, ec2.Port.tcp(443), "serving functions")
        for id, service in (
            ("Firehose", ec2.InterfaceVpcEndpointAwsService.KINESIS_FIREHOSE),
            ("SageMakerRuntime", ec2.InterfaceVpcEndpointAwsService.SAGEMAKER_RUNTIME),
            ("XRay", ec2.InterfaceVpcEndpointAwsService.XRAY),
        ):
            self.vpc.add_interface_endpoint(
                id, service=service, subnets=isolated, security_groups=[endpoints_sg], private_dns_enabled=True
            )

    def _build_cache(self, key: kms.IKey) -> tuple[ec2.SecurityGroup, elasticache.CfnServerlessCache]:
        cache_sg = ec2.SecurityGroup(
            self, "CacheSg", vpc=self.vpc, description="Encore cache", allow_all_outbound=False
        )
        cache_sg.add_ingress_rule(self.functions_sg, ec2.Port.tcp(CACHE_PORT), "serving functions")
        self.functions_sg.add_egress_rule(cache_sg, ec2.Port.tcp(CACHE_PORT), "cache")
        cache = elasticache.CfnServerlessCache(
            self,
            "Cache",
            engine="valkey",
            serverless_cache_name=f"{self.config.name_prefix}-cache",
            description="Encore session vectors and result cache",
            major_engine_version="8",
            kms_key_id=key.key_arn,
            security_group_ids=[cache_sg.security_group_id],
            subnet_ids=self.vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED).subnet_ids,
        )
        return cache_sg, cache

    @property
    def cache_url(self) -> str:
        """``rediss://`` URL of the cache (Serverless ElastiCache always requires TLS)."""
        return f"rediss://{self.cache.attr_endpoint_address}:{self.cache.attr_endpoint_port}/0"
