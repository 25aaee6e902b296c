"""The twin's CloudWatch Logs subscriptions: what a function writes to standard output goes to its log group, and
each of the template's subscription filters on that group sends the lines it matches to its destination, a
Firehose delivery stream, calling as the filter's role.

Firehose receives CloudWatch Logs' own records (a gzipped JSON batch of log events) unless the stream's processing
configuration takes them apart (``Decompression``, then ``CloudWatchLogProcessing`` with message extraction, then
``AppendDelimiterToRecord``): the twin delivers whichever of the two the template asks for, so a stream without
that configuration writes what AWS would, and a reader of the lake sees it.

Filter patterns: the JSON form ``{ $.field = "value" }`` (several joined by ``&&``) is what the stack uses; any
other pattern is refused when the twin deploys, rather than guessed at.
"""

from __future__ import annotations

import gzip
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from encore_local.twin.assembly import Deployment, Function, TwinStack

_CONDITION = re.compile(r'\$\.([A-Za-z0-9_.]+)\s*=\s*"([^"]*)"')
_BATCH = 500  # PutRecordBatch's limit


def matcher(pattern: str) -> Callable[[str], bool]:
    """A CloudWatch Logs JSON filter pattern as a test of one line."""
    body = pattern.strip()
    if not (body.startswith("{") and body.endswith("}")):
        raise ValueError(f'the twin reads only JSON filter patterns ({{ $.field = "value" }}): {pattern!r}')
    parts = [p.strip() for p in body[1:-1].split("&&")]
    conditions = [_CONDITION.fullmatch(p) for p in parts]
    if not all(conditions):
        raise ValueError(f"the twin reads only equality conditions joined by &&: {pattern!r}")
    wanted = [(m.group(1).split("."), m.group(2)) for m in conditions if m]

    def matches(line: str) -> bool:
        try:
            value: Any = json.loads(line)
        except ValueError:
            return False
        for path, expected in wanted:
            found: Any = value
            for key in path:
                found = found.get(key) if isinstance(found, dict) else None
            if found is None or str(found) != expected:
                return False
        return True

    return matches


def extracts_messages(stream: dict[str, Any]) -> bool:
    """Whether a delivery stream's processors turn CloudWatch Logs records into their messages, one per line."""
    processors = stream.get("ExtendedS3DestinationConfiguration", {}).get("ProcessingConfiguration", {})
    kinds = {p["Type"]: {x["ParameterName"]: x["ParameterValue"] for x in p.get("Parameters", [])}
             for p in processors.get("Processors", [])} if processors.get("Enabled") else {}  # fmt: skip
    return (
        "Decompression" in kinds
        and kinds.get("CloudWatchLogProcessing", {}).get("DataMessageExtraction") == "true"
        and "AppendDelimiterToRecord" in kinds
    )


@dataclass(frozen=True)
class Subscription:
    log_group: str  # its name
    matches: Callable[[str], bool]
    stream: str  # the delivery stream's name
    extract: bool
    role: str  # the principal CloudWatch Logs calls Firehose as
    filter_name: str


def subscriptions(stack: TwinStack) -> list[Subscription]:
    found = []
    for lid, res in stack.of_type("AWS::Logs::SubscriptionFilter").items():
        raw = res["Properties"]
        props = stack.properties(lid)
        stream_id = raw["DestinationArn"]["Fn::GetAtt"][0]
        if stack.resources[stream_id]["Type"] != "AWS::KinesisFirehose::DeliveryStream":
            raise ValueError(f"the twin delivers subscriptions to Firehose only: {lid}")
        found.append(
            Subscription(
                log_group=stack.names[raw["LogGroupName"]["Ref"]],
                matches=matcher(str(props["FilterPattern"])),
                stream=stack.names[stream_id],
                extract=extracts_messages(stack.properties(stream_id)),
                role=stack.principal(raw["RoleArn"]["Fn::GetAtt"][0]),
                filter_name=str(props.get("FilterName", lid)),
            )
        )
    return found


class LogSubscriptions:
    """Delivers a function's output to the subscriptions on its log group, for the stacks of ``deployment`` (read
    again when a stack is deployed); ``firehose_as(principal)`` is a Firehose client calling as that principal
    (the twin authorizes the call against its policies)."""

    def __init__(self, deployment: Deployment, firehose_as: Callable[[str], Any]) -> None:
        self.deployment, self.firehose_as = deployment, firehose_as
        self._read: tuple[tuple[int, ...], dict[str, list[Subscription]]] = ((), {})

    @property
    def by_group(self) -> dict[str, list[Subscription]]:
        key = tuple(id(stack) for stack in self.deployment.stacks)
        if self._read[0] != key:
            found: dict[str, list[Subscription]] = {}
            for stack in self.deployment.stacks:
                for sub in subscriptions(stack):
                    found.setdefault(sub.log_group, []).append(sub)
            self._read = (key, found)
        return self._read[1]

    def __call__(self, fn: Function, lines: list[str]) -> None:
        for sub in self.by_group.get(fn.log_group or "", []):
            matched = [line for line in lines if sub.matches(line)]
            if not matched:
                continue
            if sub.extract:
                records = [{"Data": (line + "\n").encode()} for line in matched]
            else:  # CloudWatch Logs' own record: the log events of one batch, gzipped
                now = int(time.time() * 1000)
                envelope = {
                    "messageType": "DATA_MESSAGE", "owner": "123456789012", "logGroup": sub.log_group,
                    "logStream": "twin", "subscriptionFilters": [sub.filter_name],
                    "logEvents": [{"id": str(i), "timestamp": now, "message": m} for i, m in enumerate(matched)],
                }  # fmt: skip
                records = [{"Data": gzip.compress(json.dumps(envelope).encode())}]
            client = self.firehose_as(sub.role)
            for start in range(0, len(records), _BATCH):
                client.put_record_batch(DeliveryStreamName=sub.stream, Records=records[start : start + _BATCH])
