"""Data access: the events sink (Firehose), tracks and charts (DynamoDB); profiles are in ``encore.profiles``.

Each store takes its client from ``encore.clients``, knows one table or stream, returns domain objects
(``encore.models``) and raises one error, ``StoreUnavailable``, for its client's failures: logic never calls
boto3 nor sees its exceptions.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from encore.clients import get_client
from encore.errors import DependencyUnavailable, StoreUnavailable
from encore.models import ChartRow, TrackInfo
from encore.vectors import FloatArray, decode

# A model's vectors are items of their own, keyed "vec#<id>" beside the track or profile item, so catalog and
# profile writes never clobber them (and vector loads are batched puts).
VECTOR_PREFIX = "vec#"
FIREHOSE_MAX_RECORDS = 500
FIREHOSE_MAX_BYTES = 4 * 1024 * 1024
# A call to AWS that failed past the client's own retries (throttled, unreachable, refused).
AWS_ERRORS: tuple[type[Exception], ...] = (ClientError, BotoCoreError)


@contextmanager
def unavailable_as(store: str, errors: tuple[type[Exception], ...] = AWS_ERRORS) -> Iterator[None]:
    """Inside it, a client's failure (``errors``) becomes ``StoreUnavailable(store)``."""
    try:
        yield
    except errors as exc:
        raise StoreUnavailable(store, str(exc)[:300]) from exc


class EventSink:
    """PutRecordBatch with retries of the records Firehose reports as failed.

    Only when some records still fail after every attempt does it raise ``DependencyUnavailable``; the caller
    answers 503 and the client retries the whole batch (duplicates are removed downstream by event_id).
    """

    def __init__(
        self,
        stream: str,
        region: str | None = None,
        attempts: int = 4,
        base_delay_s: float = 0.05,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.stream, self.region, self.attempts, self.base_delay_s, self.sleep = (
            stream,
            region,
            attempts,
            base_delay_s,
            sleep,
        )

    def put(self, records: Sequence[dict[str, Any]]) -> int:
        """Deliver every record (as one JSON line each); returns how many retries it took."""
        pending = [(json.dumps(r, separators=(",", ":")) + "\n").encode() for r in records]
        retries = 0
        for attempt in range(self.attempts):
            failed: list[bytes] = []
            for chunk in _chunks(pending):
                failed.extend(self._put_chunk(chunk))
            if not failed:
                return retries
            pending, retries = failed, retries + len(failed)
            if attempt + 1 < self.attempts:
                self.sleep(self.base_delay_s * (2**attempt) * (1 + random.random()))
        raise DependencyUnavailable(f"the event stream did not accept {len(pending)} of the events; retry the request")

    def _put_chunk(self, chunk: list[bytes]) -> list[bytes]:
        try:
            resp = get_client("firehose", self.region).put_record_batch(
                DeliveryStreamName=self.stream, Records=[{"Data": data} for data in chunk]
            )
        except (ClientError, BotoCoreError):
            return chunk  # the whole call failed (throttled, unreachable): retry all of it
        if not resp.get("FailedPutCount"):
            return []
        return [data for data, result in zip(chunk, resp["RequestResponses"], strict=True) if result.get("ErrorCode")]


def _chunks(records: list[bytes]) -> list[list[bytes]]:
    out: list[list[bytes]] = [[]]
    size = 0
    for data in records:
        if len(out[-1]) == FIREHOSE_MAX_RECORDS or size + len(data) > FIREHOSE_MAX_BYTES:
            out.append([])
            size = 0
        out[-1].append(data)
        size += len(data)
    return [c for c in out if c]


@dataclass(frozen=True)
class TrackVectors:
    cf: FloatArray | None
    content: FloatArray | None
    model_version: str | None


@dataclass(frozen=True)
class PlayedTracks:
    """What the tracks table knows of the tracks in a batch of events."""

    known: frozenset[str]  # in the catalog, or at least in the model
    vectors: dict[str, TrackVectors]  # those the latest model has vectors for


class TrackStore:
    def __init__(self, table: str, region: str | None = None) -> None:
        self.table, self.region = table, region

    def played(self, track_ids: Sequence[str]) -> PlayedTracks:
        """The catalog entries and model vectors of these tracks, read together (one BatchGetItem per 50)."""
        keys = [key for t in dict.fromkeys(track_ids) for key in (t, VECTOR_PREFIX + t)]
        with unavailable_as("tracks"):
            items = self._batch_get(keys, "track_id, cf_vector, content_vector, model_version")
        known = frozenset(item["track_id"]["S"].removeprefix(VECTOR_PREFIX) for item in items)
        vectors = {
            item["track_id"]["S"].removeprefix(VECTOR_PREFIX): TrackVectors(
                cf=decode(item.get("cf_vector", {}).get("B")),
                content=decode(item.get("content_vector", {}).get("B")),
                model_version=item.get("model_version", {}).get("S"),
            )
            for item in items
            if item["track_id"]["S"].startswith(VECTOR_PREFIX) and "cf_vector" in item
        }
        return PlayedTracks(known, vectors)

    def metadata(self, track_ids: Sequence[str]) -> dict[str, TrackInfo]:
        """The catalog entries of the tracks the table has (a track it lacks is not in the answer)."""
        with unavailable_as("tracks"):
            items = self._batch_get(
                track_ids,
                "track_id, #n, artist_id, artist_name, album, genres, image_url, duration_ms, explicit, release_date",
                {"#n": "name"},
            )
        return {item["track_id"]["S"]: TrackInfo.model_validate(plain_item(item)) for item in items}

    def _batch_get(self, track_ids: Sequence[str], projection: str, names: dict[str, str] | None = None) -> list[Any]:
        client = get_client("dynamodb", self.region)
        unique = list(dict.fromkeys(track_ids))
        out: list[Any] = []
        for i in range(0, len(unique), 100):
            request: dict[str, Any] = {
                self.table: {
                    "Keys": [{"track_id": {"S": t}} for t in unique[i : i + 100]],
                    "ProjectionExpression": projection,
                    **({"ExpressionAttributeNames": names} if names else {}),
                }
            }
            for attempt in range(5):
                resp = client.batch_get_item(RequestItems=request)
                out.extend(resp["Responses"].get(self.table, []))
                request = resp.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(0.02 * 2**attempt)
        return out


def plain_item(item: dict[str, Any]) -> dict[str, Any]:
    """A low-level DynamoDB item as plain Python (the attribute types this application writes)."""
    out: dict[str, Any] = {}
    for key, value in item.items():
        ((kind, raw),) = value.items()
        if kind == "N":
            out[key] = float(raw) if "." in raw else int(raw)
        elif kind == "L":
            out[key] = [plain_item({"v": v})["v"] for v in raw]
        elif kind == "M":
            out[key] = plain_item(raw)
        elif kind == "NULL":
            out[key] = None
        else:
            out[key] = raw
    return out


def batch_write(client: Any, table: str, requests: Sequence[dict[str, Any]], attempts: int = 5) -> None:
    """BatchWriteItem (``PutRequest``/``DeleteRequest`` entries) 25 at a time, the items DynamoDB leaves
    unprocessed retried with backoff; ``StoreUnavailable`` when some are still left after every attempt, or the
    call fails."""
    for start in range(0, len(requests), 25):
        pending: dict[str, Any] = {table: list(requests[start : start + 25])}
        for attempt in range(attempts):
            with unavailable_as(table):
                pending = client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
            if not pending:
                break
            time.sleep(0.02 * 2**attempt)
        if pending:
            raise StoreUnavailable(table, f"{len(pending[table])} writes left unprocessed")


def read_json(s3: Any, bucket: str, key: str) -> Any | None:
    """A JSON document of the lake (the model registry, decisions, attribution totals); None when it is absent,
    ``StoreUnavailable("lake")`` when S3 cannot give it."""
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("NoSuchKey", "404"):
            return None
        raise StoreUnavailable("lake", str(exc)[:300]) from exc
    except BotoCoreError as exc:
        raise StoreUnavailable("lake", str(exc)[:300]) from exc
    return json.loads(body)


class ChartStore:
    def __init__(self, table: str, region: str | None = None) -> None:
        self.table, self.region = table, region

    def chart(self, kind: str, region: str, window: str, period: str, limit: int) -> list[ChartRow]:
        """Ranked rows of one chart (``period`` "latest" for the newest)."""
        with unavailable_as("charts"):
            resp = get_client("dynamodb", self.region).query(
                TableName=self.table,
                KeyConditionExpression="chart_key = :k",
                ExpressionAttributeValues={":k": {"S": f"{kind}#{region}#{window}#{period}"}},
                Limit=limit,
                ScanIndexForward=True,
            )
        rows = [plain_item(item) for item in resp.get("Items", [])]
        return [ChartRow(int(r["rank"]), r["track_id"], int(r.get("plays", 0)), r.get("period")) for r in rows]
