"""Key schemas of the DynamoDB tables, defined once for the CDK stack, the twin and the tests."""

from __future__ import annotations

from dataclasses import dataclass

from encore.config import EncoreConfig

# The idempotency table's listener index (``encore.deletion``): one item per listener of each accepted batch.
LISTENER_INDEX = "by-listener"
LISTENER_ATTRIBUTE = "listener"


@dataclass(frozen=True)
class TableSpec:
    """A table's name and keys (all string keys but where ``sort_key_type`` says ``N``)."""

    name: str
    partition_key: str
    sort_key: str | None = None
    sort_key_type: str = "S"
    ttl_attribute: str | None = None
    # Global secondary indexes: (name, string partition key), keys projected only
    indexes: tuple[tuple[str, str], ...] = ()

    def create_table_kwargs(self) -> dict[str, object]:
        """Arguments for DynamoDB ``CreateTable`` (on-demand), for tests that make a table of their own."""
        keys = [{"AttributeName": self.partition_key, "KeyType": "HASH"}]
        attrs = [{"AttributeName": self.partition_key, "AttributeType": "S"}]
        if self.sort_key:
            keys.append({"AttributeName": self.sort_key, "KeyType": "RANGE"})
            attrs.append({"AttributeName": self.sort_key, "AttributeType": self.sort_key_type})
        attrs += [{"AttributeName": key, "AttributeType": "S"} for _, key in self.indexes]
        indexes = [
            {"IndexName": name, "KeySchema": [{"AttributeName": key, "KeyType": "HASH"}],
             "Projection": {"ProjectionType": "KEYS_ONLY"}}
            for name, key in self.indexes
        ]  # fmt: skip
        return {
            "TableName": self.name,
            "KeySchema": keys,
            "AttributeDefinitions": attrs,
            "BillingMode": "PAY_PER_REQUEST",
            **({"GlobalSecondaryIndexes": indexes} if indexes else {}),
        }


def table_specs(config: EncoreConfig) -> dict[str, TableSpec]:
    """Every table of the application, by its role."""
    names = config.resources
    return {
        "users": TableSpec(names.users_table, "user_id"),
        "tracks": TableSpec(names.tracks_table, "track_id"),
        # chart_key = "<kind>#<region>#<window>#<period>", e.g. "top#US#hour#2026-11-21T10"; rank 1..N.
        "charts": TableSpec(names.charts_table, "chart_key", "rank", sort_key_type="N", ttl_attribute="expires_at"),
        # The layout Powertools' idempotency utility expects, and the listener index a deletion reads
        # (encore.deletion: one item per listener of each accepted batch).
        "idempotency": TableSpec(
            names.idempotency_table, "id", ttl_attribute="expiration", indexes=((LISTENER_INDEX, LISTENER_ATTRIBUTE),)
        ),
    }
