"""Key schemas of the DynamoDB tables, defined once for the CDK stack, the twin and the tests."""

from __future__ import annotations

from dataclasses import dataclass

from encore.config import EncoreConfig


@dataclass(frozen=True)
class TableSpec:
    """A table's name and keys (all string keys but where ``sort_key_type`` says ``N``)."""

    name: str
    partition_key: str
    sort_key: str | None = None
    sort_key_type: str = "S"
    ttl_attribute: str | None = None

    def create_table_kwargs(self) -> dict[str, object]:
        """Arguments for DynamoDB ``CreateTable`` (on-demand), for tests that make a table of their own."""
        keys = [{"AttributeName": self.partition_key, "KeyType": "HASH"}]
        attrs = [{"AttributeName": self.partition_key, "AttributeType": "S"}]
        if self.sort_key:
            keys.append({"AttributeName": self.sort_key, "KeyType": "RANGE"})
            attrs.append({"AttributeName": self.sort_key, "AttributeType": self.sort_key_type})
        return {
            "TableName": self.name,
            "KeySchema": keys,
            "AttributeDefinitions": attrs,
            "BillingMode": "PAY_PER_REQUEST",
        }


def table_specs(config: EncoreConfig) -> dict[str, TableSpec]:
    """Every table of the application, by its role."""
    names = config.resources
    return {
        "users": TableSpec(names.users_table, "user_id"),
        "tracks": TableSpec(names.tracks_table, "track_id"),
        # chart_key = "<kind>#<region>#<window>#<period>", e.g. "top#US#hour#2026-11-21T10"; rank 1..N.
        "charts": TableSpec(names.charts_table, "chart_key", "rank", sort_key_type="N", ttl_attribute="expires_at"),
        # The layout Powertools' idempotency utility expects.
        "idempotency": TableSpec(names.idempotency_table, "id", ttl_attribute="expiration"),
    }
