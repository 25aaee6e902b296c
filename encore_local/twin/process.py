"""The twin's child processes: where their output goes (``copy_output``: one log file per kind of process, shared
by its processes, and the terminal too when asked), and a child that takes one JSON line per request over a pipe
and answers one JSON line each: a Lambda execution environment (``lambda_runtime``), a Glue driver
(``glue_worker``)."""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

# The log file of each kind of child process, in the twin's log folder.
GLUE_LOG, LAMBDA_LOG, SAGEMAKER_LOG = "glue.log", "lambda.log", "sagemaker.log"


def copy_output(source: IO[Any], log: Path, label: str, *, echo: bool = False, keep: list[str] | None = None) -> None:
    """Copy a child's output to the end of ``log`` until it ends, whole lines at a time (the processes of one kind
    share a file; an append of whole lines never splits another's), each line after ``[label]``; to this process's
    standard error as well with ``echo``; and its lines, without the label, into ``keep``."""
    prefix = f"[{label}] ".encode()
    log.parent.mkdir(parents=True, exist_ok=True)
    partial = b""
    with source, open(log, "ab", buffering=0) as out:
        while chunk := os.read(source.fileno(), 65536):  # what has arrived, at once
            *lines, partial = (partial + chunk).split(b"\n")
            if lines:
                _write(out, prefix, lines, echo, keep)
        if partial:
            _write(out, prefix, [partial], echo, keep)


def _write(out: IO[bytes], prefix: bytes, lines: list[bytes], echo: bool, keep: list[str] | None) -> None:
    data = b"".join(prefix + line + b"\n" for line in lines)
    out.write(data)  # one append
    if echo:
        sys.stderr.write(data.decode(errors="replace"))
        sys.stderr.flush()
    if keep is not None:
        keep.extend(line.decode(errors="replace") for line in lines)


def follow_output(source: IO[Any], log: Path, label: str, *, echo: bool = False) -> threading.Thread:
    """:func:`copy_output` in a thread of its own, started."""
    thread = threading.Thread(target=copy_output, args=(source, log, label), kwargs={"echo": echo},
                              name=f"output-{label}", daemon=True)  # fmt: skip
    thread.start()
    return thread


class PipedChild:
    """``python -m module args``: requests and answers over a pipe pair, its standard output and error to ``log``
    (see :func:`copy_output`)."""

    def __init__(self, module: str, args: list[str], env: dict[str, str], log: Path, cwd: Path | None = None, *,
                 label: str | None = None, echo: bool = False) -> None:  # fmt: skip
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        cmd = [sys.executable, "-m", module, *args, "--in-fd", str(to_child_r), "--out-fd", str(from_child_w)]
        self.proc = subprocess.Popen(cmd, env=env, pass_fds=(to_child_r, from_child_w), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=cwd)  # fmt: skip
        os.close(to_child_r)
        os.close(from_child_w)
        assert self.proc.stdout is not None
        self.log = log
        self._output = follow_output(self.proc.stdout, log, label or module.rsplit(".", 1)[-1], echo=echo)
        self.writer = os.fdopen(to_child_w, "wb")
        self.reader = os.fdopen(from_child_r, "rb")

    def receive(self) -> dict[str, Any] | None:
        """The child's next line, or None if it ended."""
        try:
            line = self.reader.readline()
        except OSError:
            return None
        return dict(json.loads(line)) if line else None

    def request(self, payload: Any, timeout: float | None = None) -> dict[str, Any] | None:
        """Send one request and wait for its answer (None: the child ended, its pipe is broken); raises
        ``TimeoutError`` when no answer came within ``timeout`` seconds."""
        try:
            self.writer.write(json.dumps(payload, default=str).encode() + b"\n")
            self.writer.flush()
        except OSError:
            return None
        if timeout is not None and not select.select([self.reader], [], [], timeout)[0]:
            raise TimeoutError(f"no answer within {timeout:g} s")
        return self.receive()

    def running(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """End it now (an invocation past its timeout: Lambda stops the execution environment)."""
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        self.close()

    def close(self, timeout: float = 10) -> None:
        """Close its input (it then exits) and wait; kill it if it does not."""
        for stream in (self.writer, self.reader):
            with contextlib.suppress(OSError):
                stream.close()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        # The last of its output; a process it started and left running (Spark's Python workers) may hold the pipe
        # open a while longer: the copy then ends when that one does.
        self._output.join(timeout=5)
