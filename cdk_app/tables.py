"""DynamoDB tables (users, tracks, charts, idempotency): on demand, point-in-time recovery, KMS encryption.
Keys come from ``encore.resources.table_specs``; the twin creates the tables from the synthesized template."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from constructs import Construct

from encore.config import EncoreConfig
from encore.resources import TableSpec, table_specs

_TYPES = {"S": dynamodb.AttributeType.STRING, "N": dynamodb.AttributeType.NUMBER}


class TablesConstruct(Construct):
    def __init__(self, scope: Construct, id: str, *, config: EncoreConfig, key: kms.IKey) -> None:
        super().__init__(scope, id)
        removal = RemovalPolicy.RETAIN if config.deploy.retain_data else RemovalPolicy.DESTROY
        specs = table_specs(config)
        self.users = self._build_table("Users", specs["users"], key, removal)
        self.tracks = self._build_table("Tracks", specs["tracks"], key, removal)
        self.charts = self._build_table("Charts", specs["charts"], key, removal)
        self.idempotency = self._build_table("Idempotency", specs["idempotency"], key, removal)

    def _build_table(self, id: str, spec: TableSpec, key: kms.IKey, removal: RemovalPolicy) -> dynamodb.TableV2:
        return dynamodb.TableV2(
            self,
            id,
            table_name=spec.name,
            partition_key=dynamodb.Attribute(name=spec.partition_key, type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name=spec.sort_key, type=_TYPES[spec.sort_key_type]) if spec.sort_key else None,
            billing=dynamodb.Billing.on_demand(),
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryptionV2.customer_managed_key(key),
            time_to_live_attribute=spec.ttl_attribute,
            global_secondary_indexes=[
                dynamodb.GlobalSecondaryIndexPropsV2(
                    index_name=name,
                    partition_key=dynamodb.Attribute(name=attribute, type=dynamodb.AttributeType.STRING),
                    projection_type=dynamodb.ProjectionType.KEYS_ONLY,
                )
                for name, attribute in spec.indexes
            ]
            or None,
            deletion_protection=removal == RemovalPolicy.RETAIN,
            removal_policy=removal,
        )
