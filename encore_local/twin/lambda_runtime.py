"""One Lambda execution environment of the twin, in a process of its own (``python -m
encore_local.twin.lambda_runtime``).

It does what Lambda's Python runtime does with a function: the code asset is the task root, the layers are
``/opt/python`` (composed by ``encore_local.twin.lambda_.compose_layers``), the handler is imported once (the cold
start) and invoked once per event.

- Requests arrive as JSON lines on ``--in-fd``: ``{"event": ..., "clock_offset_s": ...}``. ``time.time()`` in the
  environment reads the twin's clock (``encore_local.twin.clock``).
- Each answer is a JSON line on ``--out-fd``: ``{"result": ..., "ms": ..., "logs": [...]}``, or, when the handler
  raised, ``{"error": {errorMessage, errorType, stackTrace}, ...}`` as Lambda reports an unhandled error.
- ``logs`` are the lines the invocation wrote to standard output, which Lambda sends to the function's log group
  (the twin applies its subscription filters, ``encore_local.twin.logs``); they go to the twin's ``lambda.log``
  too, with everything else the process writes (``encore_local.twin.process``).
- Imports are limited to the task root, ``/opt/python``, the runtime's own AWS SDK and the standard library
  (``encore_local.twin.sandbox``).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import sys
import time
import traceback
import uuid
from typing import Any

from encore_local.twin.sandbox import install

# The Lambda Python runtime's own packages (the AWS SDK and what it needs); nothing else is on its path.
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six", "awslambdaric")


class Context:
    """The attributes of Lambda's context object that handlers and Powertools read."""

    def __init__(self, name: str, arn: str, memory_mb: int, timeout_s: float) -> None:
        self.function_name = name
        self.function_version = "$LATEST"
        self.invoked_function_arn = arn
        self.memory_limit_in_mb = memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{name}"
        self.log_stream_name = "twin"
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class _Tee:
    """Standard output that also keeps the lines of the current invocation (installed before the handler is
    imported, so that loggers which hold the stream they were given write through it too)."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.lines: list[str] = []
        self._partial = ""

    def write(self, text: str) -> int:
        self.stream.write(text)
        head, *rest = (self._partial + text).split("\n")
        if rest:
            self.lines.extend([head, *rest[:-1]])
            self._partial = rest[-1]
        else:
            self._partial = head
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def take(self) -> list[str]:
        lines, self.lines = [*self.lines, *([self._partial] if self._partial else [])], []
        self._partial = ""
        return lines

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


_REAL_TIME = time.time
_clock_offset_s = 0.0


def _twin_time() -> float:
    """``time.time()`` as the twin's clock has it (an offset from the real clock, set with each invocation)."""
    return _REAL_TIME() + _clock_offset_s


def _error(exc: BaseException) -> dict[str, Any]:
    return {
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "stackTrace": traceback.format_tb(exc.__traceback__),
    }


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task-root", required=True)
    ap.add_argument("--opt-python", required=True)
    ap.add_argument("--handler", required=True)
    ap.add_argument("--provided", default="", help="comma-separated top-level modules the twin supplies")
    ap.add_argument("--in-fd", type=int, required=True)
    ap.add_argument("--out-fd", type=int, required=True)
    args = ap.parse_args(argv)
    name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "function")
    os.chdir(args.task_root)
    provided = [*RUNTIME_PROVIDED, *filter(None, args.provided.split(","))]
    install([args.task_root, args.opt_python], provided, f"the Lambda function {name}")
    module_name, _, function_name = args.handler.rpartition(".")
    global _clock_offset_s
    output = _Tee(sys.stdout)
    sys.stdout = output
    time.time = _twin_time  # before the handler is imported: what it reads as now is the twin's clock
    with os.fdopen(args.in_fd, "rb") as events, os.fdopen(args.out_fd, "wb") as answers:
        try:
            handler = getattr(importlib.import_module(module_name), function_name)
        except Exception as exc:  # Runtime.ImportModuleError: every invocation of this instance fails with it
            answers.write(json.dumps({"init_error": _error(exc)}).encode() + b"\n")
            answers.flush()
            return
        answers.write(b'{"ready": true}\n')
        answers.flush()
        arn = os.environ.get("TWIN_FUNCTION_ARN", name)
        memory = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        timeout = float(os.environ.get("TWIN_FUNCTION_TIMEOUT", "3"))
        for line in events:
            request = json.loads(line)
            event, _clock_offset_s = request["event"], float(request.get("clock_offset_s", 0.0))
            # As Lambda does for each invocation: the X-Ray SDK reads its trace from here (without it, every
            # subsegment is "discarded due to Lambda worker still initializing", a log line each). Not sampled:
            # the twin has no X-Ray daemon.
            os.environ["_X_AMZN_TRACE_ID"] = (
                f"Root=1-{int(_twin_time()):08x}-{uuid.uuid4().hex[:24]};Parent={uuid.uuid4().hex[:16]};Sampled=0"
            )
            started = time.perf_counter()
            try:
                result = handler(event, Context(name, arn, memory, timeout))
                answer: dict[str, Any] = {"result": result}
            except Exception as exc:
                answer = {"error": _error(exc)}
            answer["ms"] = (time.perf_counter() - started) * 1000
            answer["logs"] = output.take()
            output.flush()  # the invocation's lines reach the twin's log when it ends
            answers.write(json.dumps(answer, default=str).encode() + b"\n")
            answers.flush()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C in the twin's terminal reaches it too: it ends, quietly
        main(sys.argv[1:])
