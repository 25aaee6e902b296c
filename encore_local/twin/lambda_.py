"""The twin's Lambda: ``Invoke`` for the template's functions, each run from its synthesized code asset and layers.

A function's execution environment is a process (``encore_local.twin.lambda_runtime``) with the code asset as
its task root, its layers composed into one ``/opt/python`` folder as Lambda extracts them, the template's
environment variables, and the credentials of the function's role (so the twin's IAM checks see the function's
calls as that role's). The layer is built for the Lambda runtime's Python (3.14); this machine runs another, so
the layer's compiled distributions (NumPy, pydantic-core, wrapt) are taken from the twin's own Python, and only
after checking that their versions are the layer's: a layer pinned to another version fails here.

Instances stay warm between invocations and run one invocation at a time, as Lambda's do.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import os
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from email.parser import Parser
from pathlib import Path
from typing import Any

from cdk_app.deploy_rules import vpc_functions_can_create_network_interfaces
from encore_local.errors import UsageError
from encore_local.twin.assembly import ACCOUNT, ROOT, Deployment, Function, TwinStack
from encore_local.twin.clock import CLOCK
from encore_local.twin.process import LAMBDA_LOG, PipedChild

OPT_ROOT = ROOT / "build" / "twin" / "opt"


@functools.cache  # once per set of layers, not per cold start
def compose_layers(layers: tuple[Path, ...]) -> tuple[Path, list[str]]:
    """``/opt/python`` for these layers (later layers over earlier ones, as Lambda extracts them), without the
    compiled distributions, and the top-level modules those provide (taken from this Python at equal versions)."""
    key = hashlib.sha256("\n".join(str(p) for p in layers).encode()).hexdigest()[:16]
    target = OPT_ROOT / key / "python"
    binary: dict[str, tuple[str, list[str]]] = {}  # distribution -> (version, top-level modules)
    for layer in layers:
        for info in sorted((layer / "python").glob("*.dist-info")):
            wheel = (info / "WHEEL").read_text() if (info / "WHEEL").exists() else ""
            if "Root-Is-Purelib: false" in wheel:
                meta = Parser().parsestr((info / "METADATA").read_text())
                tops = sorted({line.split("/")[0].split(",")[0] for line in (info / "RECORD").read_text().splitlines()})
                binary[meta["Name"]] = (meta["Version"], [t for t in tops if not t.endswith((".dist-info", ".libs"))])
    mismatched = []
    for dist, (version, _) in binary.items():
        try:
            mine = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            mine = "none"
        if mine != version:
            mismatched.append(f"{dist} {version} (the twin's Python has {mine})")
    if mismatched:
        raise UsageError(
            "the dependency layer is built for the Lambda runtime's Python, and the twin substitutes its own "
            f"builds of compiled packages only at the same versions: {', '.join(mismatched)}"
        )
    skip = {top for _, tops in binary.values() for top in tops}
    provided = sorted(t.removesuffix(".py") for t in skip)
    if not target.exists():
        staging = target.with_name("python.partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for layer in layers:
            for entry in sorted((layer / "python").iterdir()):
                if entry.name in skip or entry.name.split("-")[0] in {d.replace("-", "_") for d in binary}:
                    continue
                link = staging / entry.name
                if link.is_symlink() or link.exists():
                    link.unlink()
                link.symlink_to(entry.resolve())
        staging.rename(target)
    return target, provided


def refused_at_creation(stack: TwinStack) -> list[str]:
    """What Lambda's CreateFunction refuses in this stack: a function in a VPC whose role may not manage the
    network interfaces Lambda attaches it with (Lambda checks the role when it creates the function; the rule is
    the one ``make check-deploy`` applies)."""
    return [
        f"CreateFunction: InvalidParameterValueException: The provided execution role does not have permissions to "
        f"manage network interfaces on EC2: {problem}"
        for problem in vpc_functions_can_create_network_interfaces(stack.assembly)
    ]


class FunctionError(Exception):
    """The handler raised: Lambda answers 200 with ``X-Amz-Function-Error: Unhandled`` and this payload."""

    def __init__(self, payload: dict[str, Any]) -> None:
        super().__init__(payload.get("errorMessage", ""))
        self.payload = payload


class Instance:
    """One warm execution environment of a function."""

    def __init__(self, fn: Function, env: dict[str, str], log_dir: Path, echo: bool = False) -> None:
        opt_python, provided = compose_layers(tuple(fn.layers))
        args = ["--task-root", str(fn.code), "--opt-python", str(opt_python), "--handler", fn.handler,
                "--provided", ",".join(provided)]  # fmt: skip
        self.child = PipedChild("encore_local.twin.lambda_runtime", args, env, log_dir / LAMBDA_LOG, fn.code,
                                label=fn.name, echo=echo)  # fmt: skip
        self.proc = self.child.proc
        self.init_error: dict[str, Any] | None = None
        self.output: list[str] = []  # what the last invocation wrote to standard output

    def wait_ready(self) -> None:
        said = self.child.receive() or {"init_error": {"errorMessage": "the runtime exited", "errorType":
                                                       "Runtime.ExitError"}}  # fmt: skip
        self.init_error = said.get("init_error")

    def alive(self) -> bool:
        return self.child.running() and self.init_error is None

    def usable(self) -> bool:
        """Whether it can serve another invocation (asked after one, whatever ``alive`` said before it)."""
        return self.child.running() and self.init_error is None

    def invoke(self, event: Any, timeout_s: float) -> tuple[Any, float]:
        """One invocation; past ``timeout_s`` the environment is stopped and ``TimeoutError`` raised."""
        if self.init_error is not None:
            raise FunctionError({**self.init_error, "errorType": "Runtime.ImportModuleError"})
        try:
            answer = self.child.request({"event": event, "clock_offset_s": CLOCK.offset.total_seconds()}, timeout_s)
        except TimeoutError:
            self.child.kill()
            raise
        if answer is None:
            raise FunctionError({"errorMessage": "the execution environment exited", "errorType": "Runtime.ExitError"})
        self.output = list(answer.get("logs", []))
        if "error" in answer:
            raise FunctionError(answer["error"])
        return answer["result"], float(answer["ms"])

    def close(self) -> None:
        self.child.close()


class IntegrationTimeout(TimeoutError):
    """The caller's deadline passed before the function answered."""


class LambdaService:
    """Invoke for the deployment's functions, each function (by its name: logical ids repeat across stacks) with a
    pool of warm execution environments.

    An invocation takes whichever of the function's instances is idle, the most recently used first (the
    warmest, as Lambda reuses them); an instance whose process ended while idle is replaced first. With
    ``max_instances`` instances busy, an invocation waits for one, in turn with the others waiting (and for no
    longer than its caller's deadline), as a function at its concurrency limit makes
    callers wait (this machine has two cores). ``twin_env(fn)`` is what the twin adds to the template's variables.
    What the instances write goes to ``log_dir``'s ``lambda.log``, and with ``echo`` to this process's standard
    error too.
    """

    def __init__(self, deployment: Deployment, twin_env: Any, log_dir: Path, max_instances: int = 4,
                 on_output: Callable[[Function, list[str]], None] | None = None, *,
                 echo: bool = False) -> None:  # fmt: skip
        self.deployment = deployment
        self.on_output = on_output  # CloudWatch Logs: what each invocation wrote, for its log group's subscriptions
        self.twin_env = twin_env  # (Function) -> dict of variables: endpoints and the role's credentials
        self.log_dir, self.echo = log_dir, echo
        self.max_instances = max(1, max_instances)
        self.instances: list[Instance] = []
        self._idle: dict[str, list[Instance]] = {}
        self._count: dict[str, int] = {}
        self._waiting: dict[str, deque[object]] = {}  # callers waiting for an instance, first come first
        self._changed = threading.Condition()

    def environment(self, fn: Function) -> dict[str, str]:
        return {
            **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR", "SYSTEMROOT")},
            **fn.environment,
            "AWS_LAMBDA_FUNCTION_NAME": fn.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.14",
            "LAMBDA_TASK_ROOT": str(fn.code),
            "TWIN_FUNCTION_ARN": fn.arn,
            "TWIN_FUNCTION_TIMEOUT": str(fn.timeout_s),
            "PYTHONDONTWRITEBYTECODE": "1",
            **self.twin_env(fn),
        }

    def start(self, functions: list[Function], count: int) -> None:
        """Start ``count`` instances of each function now (their cold starts overlap) and keep them idle."""
        started = [(fn, self._new(fn)) for fn in functions for _ in range(count)]
        for fn, instance in started:
            instance.wait_ready()
            with self._changed:
                self._idle.setdefault(fn.name, []).append(instance)

    def _new(self, fn: Function, reserved: bool = False) -> Instance:
        """A new instance; ``reserved``: its place under ``max_instances`` was counted already."""
        if not reserved:
            with self._changed:
                self._count[fn.name] = self._count.get(fn.name, 0) + 1
        try:
            instance = Instance(fn, self.environment(fn), self.log_dir, self.echo)
        except BaseException:
            with self._changed:
                self._count[fn.name] -= 1
            raise
        with self._changed:
            self.instances.append(instance)
        return instance

    def _retire(self, fn: Function, instance: Instance) -> None:
        instance.close()
        with self._changed:
            self._count[fn.name] -= 1
            if instance in self.instances:
                self.instances.remove(instance)
            self._changed.notify_all()

    def _take(self, fn: Function, until: float | None = None) -> Instance:
        """An idle instance of ``fn``, or a new one under ``max_instances``, to callers in the order they came: a
        request that arrives while others wait queues behind them, so none starves under load. ``TimeoutError``
        if none is free by ``until`` (a ``time.monotonic()`` time)."""
        ticket, again = object(), False
        while True:
            with self._changed:
                queue = self._waiting.setdefault(fn.name, deque())
                if again:
                    queue.appendleft(ticket)
                else:
                    queue.append(ticket)
                try:
                    while queue[0] is not ticket or (
                        not self._idle.get(fn.name) and self._count.get(fn.name, 0) >= self.max_instances
                    ):
                        left = None if until is None else until - time.monotonic()
                        if left is not None and left <= 0:
                            raise TimeoutError(f"no instance of {fn.name} was free in time")
                        self._changed.wait(left)
                    idle = self._idle.setdefault(fn.name, [])
                    instance = idle.pop() if idle else None
                    if instance is None:  # take the free place now, before another caller does
                        self._count[fn.name] = self._count.get(fn.name, 0) + 1
                finally:
                    queue.remove(ticket)
                    self._changed.notify_all()  # the next in line may go now
            if instance is None:
                instance = self._new(fn, reserved=True)
                instance.wait_ready()
                return instance
            if instance.alive():
                return instance
            self._retire(fn, instance)  # it ended while idle: Lambda never routes to it
            again = True  # first in line again

    def invoke(self, function: str, payload: Any) -> tuple[Any, float]:
        """Run one invocation of ``function`` (its name or ARN); raises ``FunctionError``."""
        try:
            fn = self.deployment.function(function)
        except KeyError as missing:
            region = self.deployment.region
            raise LookupError(f"Function not found: arn:aws:lambda:{region}:{ACCOUNT}:function:{missing}") from None
        return self.invoke_function(fn, payload)

    def invoke_function(self, fn: Function, payload: Any, deadline_s: float | None = None) -> tuple[Any, float]:
        """One invocation, stopped at the function's timeout (``FunctionError`` "Task timed out", as Lambda's)
        or at the caller's ``deadline_s`` if that comes first (``IntegrationTimeout``: API Gateway stops
        waiting at 29 s; the twin stops the function too, where Lambda would let it run to its own timeout)."""
        until = None if deadline_s is None else time.monotonic() + deadline_s  # waiting for an instance counts
        try:
            instance = self._take(fn, until)
        except TimeoutError:
            raise IntegrationTimeout(f"no instance of {fn.name} was free within {deadline_s:g} s") from None
        limit = fn.timeout_s if until is None else min(fn.timeout_s, max(0.001, until - time.monotonic()))
        instance.output = []
        try:
            return instance.invoke(payload, limit)
        except TimeoutError:
            if limit < fn.timeout_s:
                raise IntegrationTimeout(f"{fn.name} did not answer within {deadline_s:g} s") from None
            timed_out = {
                "errorType": "Sandbox.Timedout",
                "errorMessage": f"Task timed out after {fn.timeout_s:.2f} seconds",
            }
            raise FunctionError(timed_out) from None
        finally:
            output, instance.output = instance.output, []
            self._give_back(fn, instance)
            if output and self.on_output is not None:
                self.on_output(fn, output)

    def _give_back(self, fn: Function, instance: Instance) -> None:
        if instance.usable():
            with self._changed:
                self._idle.setdefault(fn.name, []).append(instance)
                self._changed.notify_all()
        else:  # it died, or its handler never imported: the next invocation starts a new one
            self._retire(fn, instance)
            with self._changed:  # and any idle one whose process ended meanwhile goes too
                ended = [i for i in self._idle.get(fn.name, []) if not i.usable()]
                self._idle[fn.name] = [i for i in self._idle.get(fn.name, []) if i not in ended]
            for dead in ended:
                self._retire(fn, dead)

    def close(self) -> None:
        with self._changed:
            instances, self.instances = list(self.instances), []
            self._idle.clear()
            self._count.clear()
        for instance in instances:
            instance.close()


def twin_function_environment(
    twin_env: Callable[[str | None], dict[str, str]], cache_url: str
) -> Callable[[Function], dict[str, str]]:
    """``twin_env(principal)`` plus the twin's cache: ElastiCache Serverless takes TLS (``rediss://``) on its
    endpoint, the twin's node speaks plain RESP, so the template's URL is replaced with the node's."""

    def environment(fn: Function) -> dict[str, str]:
        return dict(twin_env(fn.role)) | {"ENCORE_CACHE_URL": cache_url}

    return environment
