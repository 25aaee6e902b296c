"""Run the stack's state machines (the nightly retraining, the charts refresh) and read back what they did, as one
would with ``aws stepfunctions start-execution`` and ``get-execution-history``.

On the twin the execution is the synthesized definition run by moto's ASL interpreter (``encore_local.twin
.stepfunctions``); its Glue, SageMaker and Lambda tasks run the stack's assets. ``at`` starts the execution at a
notional time (the twin's clock control), so a simulated history is as recent to it as a real one would be.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import requests

from encore.clients import get_client
from encore.config import EncoreConfig
from encore_local.twin.stepfunctions import CLOCK_PATH, history, state_times

ACCOUNT = "123456789012"


@dataclass
class Execution:
    arn: str
    status: str
    seconds: float
    output: dict[str, Any] = field(default_factory=dict)
    states: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    cause: str | None = None

    @property
    def gate(self) -> dict[str, Any]:
        return dict(self.output.get("gate", {}).get("decision", {}))

    @property
    def promoted(self) -> bool:
        return bool(self.gate.get("promote"))

    def failure(self) -> str:
        """The state that failed, its error and cause (empty if none did)."""
        failed = next((s for s in self.states if s.get("status") == "failed" and s.get("error")), None)
        return f"{failed['state']}: {failed['error']}: {failed.get('cause')}" if failed else ""


def set_clock(aws_endpoint: str, at: datetime | None) -> None:
    """Move the twin's clock to ``at`` (it runs on from there; None: the real clock again)."""
    resp = requests.post(aws_endpoint + CLOCK_PATH, json={"now": at.isoformat() if at else None}, timeout=10)
    resp.raise_for_status()


def run_state_machine(
    config: EncoreConfig,
    machine: str,
    *,
    name: str,
    at: datetime | None = None,
    aws_endpoint: str | None = None,
    timeout_s: float = 6 * 3600,
    execution_input: dict[str, Any] | None = None,
) -> Execution:
    """Start ``machine`` (its name) as execution ``name`` and wait until it ends. With ``at``, the twin's clock
    runs from ``at`` for the execution's whole run, so its start and stop dates are both notional."""
    sfn = get_client("stepfunctions", config.region)
    endpoint = aws_endpoint or sfn.meta.endpoint_url
    if at is not None:
        set_clock(endpoint, at)
    started = time.perf_counter()
    try:
        arn = f"arn:aws:states:{config.region}:{ACCOUNT}:stateMachine:{machine}"
        execution = sfn.start_execution(stateMachineArn=arn, name=name, input=json.dumps(execution_input or {}))[
            "executionArn"
        ]
        deadline = time.monotonic() + timeout_s
        while True:
            described = sfn.describe_execution(executionArn=execution)
            if described["status"] != "RUNNING" or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    finally:
        if at is not None:
            set_clock(endpoint, None)
    events = history(sfn, execution)
    failed = next((e for e in events if e["type"] == "ExecutionFailed"), None)
    details = (failed or {}).get("executionFailedEventDetails", {})
    return Execution(
        arn=execution,
        status=described["status"],
        seconds=time.perf_counter() - started,
        output=json.loads(described.get("output") or "{}"),
        states=state_times(events),
        error=details.get("error"),
        cause=details.get("cause"),
    )
