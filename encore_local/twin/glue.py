"""The twin's Glue: ``StartJobRun``, ``GetJobRun`` and ``GetJobRuns`` for the template's jobs, answered as Glue does.

moto's own Glue advances a run to SUCCEEDED without running anything; here a run is the job's script asset run
with the job's ``DefaultArguments`` merged with the run's ``Arguments``, as the job's role, by the twin's Glue
driver (``encore_local.twin.glue_worker``). A job runs at most ``MaxConcurrentRuns`` times at once (1 unless the
template says otherwise); one more start is refused with ``ConcurrentRunsExceededException``, as Glue refuses it.
Runs queue for the one driver (this machine has two cores).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cdk_app.deploy_rules import GLUE_PROVIDED
from encore_local.twin.assembly import Deployment, GlueJob
from encore_local.twin.iam import client_for
from encore_local.twin.process import GLUE_LOG, PipedChild
from encore_local.twin.sandbox import distribution_closure

OUTPUT_LOG_GROUP = "/aws-glue/jobs/output"


class GlueError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass
class JobRun:
    id: str
    job: str
    arguments: dict[str, str]
    state: str = "RUNNING"
    started: float = field(default_factory=time.time)
    completed: float | None = None
    error: str | None = None
    output: list[str] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "Id": self.id,
            "JobName": self.job,
            "JobRunState": self.state,
            "Arguments": self.arguments,
            "StartedOn": self.started,
            "LastModifiedOn": self.completed or self.started,
            "ExecutionTime": int((self.completed or time.time()) - self.started),
            "Attempt": 0,
            "GlueVersion": "5.0",
        }
        if self.completed:
            out["CompletedOn"] = self.completed
        if self.error:
            out["ErrorMessage"] = self.error
        return out


class _Driver:
    """The Glue driver process for one set of shipped files and one role; its output (Spark's log at its default
    level, WARN, or INFO when ``verbose``, which also shows it on this process's standard error) to ``log``."""

    def __init__(self, job: GlueJob, env: dict[str, str], log: Path, verbose: bool = False) -> None:
        modules = [
            m.split("==")[0].split(">=")[0]
            for m in job.default_arguments.get("--additional-python-modules", "").split(",")
            if m
        ]
        provided = sorted(distribution_closure([*GLUE_PROVIDED, *modules]))
        shipped = os.pathsep.join(str(p) for p in job.extra_py_files)
        args = ["--shipped", shipped, "--provided", ",".join(provided), *(["--log-level", "INFO"] if verbose else [])]
        self.child = PipedChild("encore_local.twin.glue_worker", args, env, log, label=job.role, echo=verbose)
        self.log = log
        self.lock = threading.Lock()
        self.ready = False

    def run(self, request: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            if not self.ready:
                if self.child.receive() is None:
                    return {"error": f"the Glue driver did not start (see {self.log})"}
                self.ready = True
            return self.child.request(request) or {"error": f"the Glue driver exited (see {self.log})"}

    def close(self) -> None:
        self.child.close(timeout=20)


class GlueService:
    def __init__(
        self,
        deployment: Deployment,
        env_for_role: Callable[[str | None], dict[str, str]],
        log_dir: Path,
        *,
        verbose: bool = False,
    ) -> None:
        self.deployment = deployment
        self.env_for_role = env_for_role  # None: the operator's (the twin's own) environment
        self.log_dir, self.verbose = log_dir, verbose
        self.runs: dict[str, JobRun] = {}
        self._drivers: dict[tuple[str, ...], _Driver] = {}
        self._lock = threading.Lock()

    @property
    def jobs(self) -> dict[str, GlueJob]:
        return self.deployment.glue_jobs()

    def _job(self, name: str) -> GlueJob:
        jobs = self.jobs
        if name not in jobs:
            raise GlueError("EntityNotFoundException", f"Job {name} not found")
        return jobs[name]

    def _driver(self, job: GlueJob) -> _Driver:
        key = (job.role, *map(str, job.extra_py_files), job.default_arguments.get("--additional-python-modules", ""))
        with self._lock:
            if key not in self._drivers:
                env = self.env_for_role(job.role)
                self._drivers[key] = _Driver(job, env, self.log_dir / GLUE_LOG, self.verbose)
            return self._drivers[key]

    def warm(self, stack_name: str) -> None:
        """Start a stack's drivers now (a JVM takes seconds to start), so its first run does not wait for one."""
        for job in self.jobs.values():
            if job.role.startswith(f"{stack_name}."):
                self._driver(job)

    def start_job_run(self, name: str, arguments: dict[str, str] | None = None) -> str:
        job = self._job(name)
        with self._lock:
            running = [r for r in self.runs.values() if r.job == name and r.state == "RUNNING"]
            if len(running) >= job.max_concurrent_runs:
                raise GlueError("ConcurrentRunsExceededException", f"Concurrent runs exceeded for {name}")
            run = JobRun(f"jr_{uuid.uuid4().hex}", name, dict(arguments or {}))
            self.runs[run.id] = run
        threading.Thread(target=self._execute, args=(job, run), name=f"glue-{run.id}", daemon=True).start()
        return run.id

    def _execute(self, job: GlueJob, run: JobRun) -> None:
        merged = job.default_arguments | run.arguments
        argv = ["--JOB_NAME", job.name, "--JOB_RUN_ID", run.id]
        for key, value in merged.items():
            argv += [key, value]
        answer = self._driver(job).run({"job": job.name, "script": str(job.script), "argv": argv})
        run.output = list(answer.get("output", []))
        self._log(run)
        run.completed = time.time()
        run.state, run.error = ("FAILED", str(answer["error"])) if "error" in answer else ("SUCCEEDED", None)

    def _log(self, run: JobRun) -> None:
        """The run's output where Glue puts it: log group /aws-glue/jobs/output, stream <run id>."""
        if not any(run.output):
            return
        logs = client_for("logs", self.env_for_role(None))
        with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
            logs.create_log_group(logGroupName=OUTPUT_LOG_GROUP)
        logs.create_log_stream(logGroupName=OUTPUT_LOG_GROUP, logStreamName=run.id)
        now = int(time.time() * 1000)
        # CloudWatch Logs refuses an empty message: a blank line of the output is not an event
        events = [{"timestamp": now, "message": line} for line in run.output if line]
        logs.put_log_events(logGroupName=OUTPUT_LOG_GROUP, logStreamName=run.id, logEvents=events)

    def get_job_run(self, name: str, run_id: str) -> dict[str, Any]:
        self._job(name)
        run = self.runs.get(run_id)
        if run is None or run.job != name:
            raise GlueError("EntityNotFoundException", f"Job run {run_id} not found")
        return run.describe()

    def get_job_runs(self, name: str) -> list[dict[str, Any]]:
        self._job(name)
        return [r.describe() for r in sorted(self.runs.values(), key=lambda r: -r.started) if r.job == name]

    # -- the Glue API, as the twin's router calls it -----------------------------------------------------------

    def handle(self, operation: str, request: dict[str, Any]) -> dict[str, Any] | None:
        """Answer a Glue API call this service owns (None: let moto answer it)."""
        if operation == "StartJobRun":
            return {"JobRunId": self.start_job_run(request["JobName"], request.get("Arguments"))}
        if operation == "GetJobRun":
            return {"JobRun": self.get_job_run(request["JobName"], request["RunId"])}
        if operation == "GetJobRuns":
            return {"JobRuns": self.get_job_runs(request["JobName"])}
        return None

    def close(self) -> None:
        for driver in self._drivers.values():
            driver.close()
        self._drivers.clear()
