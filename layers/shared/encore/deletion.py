"""Deleting a listener (``DELETE /v1/users/{user_id}``): what goes at once, and the request the nightly purge
honours.

At once: the profile and the vector item (long-term vector, liked history), the session (short-term vector),
the cached recommendations (the generation their keys carry moves on, so none can be read again; they expire
within ``RESULT_TTL_S``), and the idempotency records of the listener's event batches (found through the
listener index the events function writes beside each record). Then a purge request is left in the lake
(``deletions/<user>.json``): curate_events drops the listener's events dated before it from then on, and the
``purge_listeners`` step of the next nightly run removes them from the curated events, which the features, and
so the next model, are built from. Raw objects (events, impressions) and quarantined rows go when their
retention ends. Every step can run again: a retried deletion deletes what is left.
"""

from __future__ import annotations

import json
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord

from encore.cache import CacheUnavailable, SessionCache
from encore.clients import get_client
from encore.config import EncoreConfig
from encore.errors import DependencyUnavailable, StoreUnavailable
from encore.models import DeletionResponse
from encore.observability import logger
from encore.profiles import ProfileStore
from encore.resources import LISTENER_ATTRIBUTE, LISTENER_INDEX
from encore.stores import batch_write, unavailable_as

_INDEX_PREFIX = "listener#"


def listener_index_items(listeners: set[str], record_id: str, expiry: int) -> list[dict[str, Any]]:
    """The index items of one idempotency record (low-level DynamoDB items, expiring with the record)."""
    return [
        {
            "id": {"S": f"{_INDEX_PREFIX}{user}#{record_id}"},
            LISTENER_ATTRIBUTE: {"S": user},
            "expiration": {"N": str(expiry)},
        }
        for user in sorted(listeners)
    ]


# The listeners of the batch being accepted (set by the events function around the idempotent call).
batch_listeners: ContextVar[frozenset[str]] = ContextVar("batch_listeners", default=frozenset())


class ListenerIndexedPersistence(DynamoDBPersistenceLayer):
    """Powertools' DynamoDB idempotency records (``_put_record`` is its documented extension point), each with
    an index item per listener of its batch beside it, so that deleting a listener finds their records. An index
    item that cannot be written leaves the record to expire unindexed within the hour (logged), rather than
    refusing events that were accepted."""

    def _put_record(self, data_record: DataRecord) -> None:
        super()._put_record(data_record)
        items = listener_index_items(set(batch_listeners.get()), data_record.idempotency_key,
                                     int(data_record.expiry_timestamp or 0))  # fmt: skip
        try:
            batch_write(self.client, self.table_name, [{"PutRequest": {"Item": i}} for i in items])
        except StoreUnavailable as exc:
            logger.warning("listener index not written", extra={"detail": str(exc)[:300]})


def forget_idempotency(table: str, region: str | None, user_id: str) -> int:
    """Delete the idempotency records of the listener's batches and their index items; how many records."""
    client = get_client("dynamodb", region)
    keys: list[str] = []
    pages = client.get_paginator("query").paginate(
        TableName=table,
        IndexName=LISTENER_INDEX,
        KeyConditionExpression="#l = :u",
        ExpressionAttributeNames={"#l": LISTENER_ATTRIBUTE},
        ExpressionAttributeValues={":u": {"S": user_id}},
    )
    with unavailable_as("idempotency"):
        for page in pages:
            keys += [item["id"]["S"] for item in page.get("Items", [])]
    records = [k.removeprefix(f"{_INDEX_PREFIX}{user_id}#") for k in keys]
    batch_write(client, table, [{"DeleteRequest": {"Key": {"id": {"S": k}}}} for k in (*records, *keys)])
    return len(records)


# What outlives the purge, and until when.
LATER = (
    "raw events and impressions: when the raw zone's retention ends (the stack's deploy.raw_retention_days)",
    "quarantined rows: when the quarantine's retention ends (deploy.quarantine_retention_days)",
    "models trained before the deletion keep the listener's factors in their artifacts until those are deleted; "
    "their vectors are never loaded again",
)


def request_purge(config: EncoreConfig, user_id: str, now_ms: int) -> None:
    """The purge request the nightly run honours (and curate_events, for events still in the raw zone)."""
    body = json.dumps({"user_id": user_id, "requested_at_ms": now_ms})
    with unavailable_as("lake"):
        get_client("s3", config.region).put_object(
            Bucket=config.resources.lake_bucket, Key=config.lake.deletion(user_id), Body=body.encode()
        )


@dataclass
class Deleter:
    config: EncoreConfig
    profiles: ProfileStore
    cache: SessionCache
    result_ttl_s: int

    def delete(self, user_id: str, now_ms: int) -> DeletionResponse:
        # The purge request first: whatever fails after it, the nightly run still removes the events.
        request_purge(self.config, user_id, now_ms)
        had_profile = self.profiles.delete(user_id)
        try:
            self.cache.forget(user_id, self.result_ttl_s)
        except CacheUnavailable:
            raise DependencyUnavailable(
                "the session cache could not be reached: the profile is deleted; send the DELETE again"
            ) from None
        records = forget_idempotency(self.config.resources.idempotency_table, self.config.region, user_id)
        logger.info("listener deleted", extra={"profile_found": had_profile, "idempotency_records": records})
        return DeletionResponse(
            user_id=user_id,
            profile_found=had_profile,
            deleted_now=[
                "profile, long-term vector and liked history",
                "session (short-term vector)",
                f"cached recommendations (none can be read again; the bytes expire within {self.result_ttl_s} s)",
                f"idempotency records of the listener's event batches ({records})",
            ],
            next_run=[
                "events in the curated zone (curate_events drops any still arriving from the raw zone)",
                "features built from them (interactions, transitions, user statistics)",
                "the listener's vectors: the next model is trained without them, and none are loaded again",
            ],
            later=list(LATER),
            purge_requested_at_ms=now_ms,
        )
