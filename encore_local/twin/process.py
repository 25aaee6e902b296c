"""A child process of the twin that takes one JSON line per request over a pipe and answers one JSON line each:
a Lambda execution environment (``lambda_runtime``), a Glue driver (``glue_worker``). Its output goes to a log."""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
from pathlib import Path
from typing import Any


class PipedChild:
    def __init__(self, module: str, args: list[str], env: dict[str, str], log: Path, cwd: Path | None = None) -> None:
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        log.parent.mkdir(parents=True, exist_ok=True)
        self.log = open(log, "ab")  # noqa: SIM115 - lives as long as the child
        cmd = [sys.executable, "-m", module, *args, "--in-fd", str(to_child_r), "--out-fd", str(from_child_w)]
        self.proc = subprocess.Popen(cmd, env=env, pass_fds=(to_child_r, from_child_w), stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log, cwd=cwd)  # fmt: skip
        os.close(to_child_r)
        os.close(from_child_w)
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
        self.log.close()
