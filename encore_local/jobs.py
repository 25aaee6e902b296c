"""``encore job run``: start one of the stack's Glue jobs and wait for it, as ``aws glue start-job-run`` would.

The job runs wherever the Glue API it calls runs it: on the twin, its script asset on the twin's Spark
(``encore_local.twin.glue``). What the job counted is the ``<job>: {...}`` line it prints, read back from its
output log (``/aws-glue/jobs/output``, one stream per run), as one reads a Glue job's output in AWS.
"""

from __future__ import annotations

import ast
import time
from dataclasses import dataclass, field
from typing import Any

from encore.clients import get_client
from encore.config import EncoreConfig
from encore.pipeline import GLUE_JOBS, job_name
from encore_local.errors import UsageError
from encore_local.twin.glue import OUTPUT_LOG_GROUP

JOB_NAMES = tuple(step.name for step in GLUE_JOBS)
TERMINAL = ("SUCCEEDED", "FAILED", "TIMEOUT", "ERROR", "STOPPED")


@dataclass
class JobRun:
    name: str
    run_id: str
    state: str
    seconds: float
    result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    output: list[str] = field(default_factory=list)


class JobFailed(Exception):
    def __init__(self, run: JobRun) -> None:
        super().__init__(f"{run.name} {run.state}: {run.error or 'no error message'}")
        self.run = run


def glue_job_name(config: EncoreConfig, step_name: str) -> str:
    if step_name not in JOB_NAMES:
        raise UsageError(f"unknown job '{step_name}': one of {', '.join(JOB_NAMES)}")
    return job_name(config.name_prefix, next(s for s in GLUE_JOBS if s.name == step_name))


def run_job(
    name: str,
    config: EncoreConfig,
    *,
    run_time: str | None = None,
    lookback_days: int | None = None,
    extra: dict[str, Any] | None = None,
    timeout_s: float = 3600,
) -> JobRun:
    """Start the job (by its step name, e.g. ``curate_events``) with these arguments over its defaults, wait,
    and return the run; raises ``JobFailed`` if it did not succeed."""
    glue = get_client("glue", config.region)
    physical = glue_job_name(config, name)
    arguments = {
        "--run_time": run_time,
        "--lookback_days": lookback_days,
        **{f"--{k}": v for k, v in (extra or {}).items()},
    }
    started = time.perf_counter()
    run_id = glue.start_job_run(JobName=physical, Arguments={k: str(v) for k, v in arguments.items() if v is not None})[
        "JobRunId"
    ]
    deadline = time.monotonic() + timeout_s
    while True:
        described = glue.get_job_run(JobName=physical, RunId=run_id)["JobRun"]
        if described["JobRunState"] in TERMINAL or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    output = _output(config, run_id)
    run = JobRun(name, run_id, described["JobRunState"], time.perf_counter() - started,
                 _result(name, output), described.get("ErrorMessage"), output)  # fmt: skip
    if run.state != "SUCCEEDED":
        raise JobFailed(run)
    return run


def _output(config: EncoreConfig, run_id: str) -> list[str]:
    logs = get_client("logs", config.region)
    try:
        events = logs.get_log_events(logGroupName=OUTPUT_LOG_GROUP, logStreamName=run_id, startFromHead=True)["events"]
    except logs.exceptions.ResourceNotFoundException:
        return []
    return [str(e["message"]) for e in events]


def _result(name: str, output: list[str]) -> dict[str, Any]:
    """The counts the job printed last as ``<name>: {...}``."""
    for line in reversed(output):
        head, _, tail = line.partition(": ")
        if head == name and tail.startswith("{"):
            value = ast.literal_eval(tail)
            return value if isinstance(value, dict) else {}
    return {}
