"""``encore twin up|down|status|env|serve``: the twin's services as a background process with a state file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, cast

from encore.config import EncoreConfig, Stage, runtime_values
from encore_local.errors import UsageError
from encore_local.twin.apigateway import TwinApi
from encore_local.twin.assembly import TwinStack
from encore_local.twin.iam import credentials
from encore_local.twin.lambda_ import twin_function_environment
from encore_local.twin.services import RedisKind, TwinServices

STATE_FILE = "twin.json"
LOG_FILE = "twin.log"
LOG_DIR = "logs"  # the twin's processes' logs (glue.log, lambda.log, sagemaker.log), and those of encore api serve


def _state_path(state_dir: Path) -> Path:
    return state_dir / STATE_FILE


def _alive(pid: int) -> bool:
    try:  # reap it first if it is our own child (a test that ran up() and down()), else it lingers as a zombie
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_state(state_dir: Path) -> dict[str, Any] | None:
    """The running twin's state, or None (a state file left by a dead process is removed)."""
    path = _state_path(state_dir)
    if not path.exists():
        return None
    state: dict[str, Any] = json.loads(path.read_text())
    if not _alive(int(state["pid"])):
        path.unlink(missing_ok=True)
        return None
    return state


def deployed_config(state: dict[str, Any], stage: str) -> EncoreConfig:
    """The configuration of the stack the running twin deployed (its resource names), if it is ``stage``'s."""
    values = state.get("config") or {}
    if values.get("stage") != stage:
        raise UsageError(f"the running twin deployed stage '{values.get('stage')}', not '{stage}'")
    return EncoreConfig.for_stage(cast(Stage, stage), values)


def api(state: dict[str, Any], state_dir: Path, **options: Any) -> TwinApi:
    """The twin's API Gateway for the running twin's stack, in this process: its functions' instances run from
    the stack's code assets, calling the running twin's AWS as their roles."""
    env: dict[str, str] = state["env"]

    def environment_of(principal: str | None) -> dict[str, str]:
        return env | credentials(principal) if principal else dict(env)

    stack = TwinStack.load(Path(state["assembly"]))
    functions_env = twin_function_environment(environment_of, state["cache_url"])
    config = deployed_config(state, state["stage"])
    return TwinApi(config, stack, functions_env, state_dir / LOG_DIR, environment_of=environment_of, **options)


def export_lines(env: dict[str, str]) -> str:
    return "\n".join(f"export {k}={v}" for k, v in env.items())


def serve(config: EncoreConfig, state_dir: Path, cache: RedisKind | None) -> None:
    """Run the services in the foreground until SIGTERM or Ctrl-C, publishing their endpoints in the state file."""
    state_dir.mkdir(parents=True, exist_ok=True)
    if read_state(state_dir) is not None:
        raise UsageError(f"a twin is already running from {state_dir} (encore twin down first)")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    twin = TwinServices(config, cache=cache, progress=True, log_dir=state_dir / LOG_DIR)
    with twin as endpoints:
        state = {"pid": os.getpid(), "stage": config.stage, **endpoints.to_json(), "env": endpoints.environment(),
                 "config": runtime_values(twin.config),
                 "assembly": str(twin.stack(config.stage).assembly.out_dir)}  # fmt: skip
        tmp = _state_path(state_dir).with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(_state_path(state_dir))
        try:
            stop.wait()
        finally:
            _state_path(state_dir).unlink(missing_ok=True)


def up(state_dir: Path, stage: str, cache: RedisKind | None, timeout: float = 300.0) -> dict[str, Any]:
    """Start ``encore twin serve`` detached and wait until it has published its endpoints."""
    state_dir.mkdir(parents=True, exist_ok=True)
    existing = read_state(state_dir)
    if existing is not None:
        raise UsageError(f"a twin is already running from {state_dir} (pid {existing['pid']}); encore twin down first")
    cmd = [sys.executable, "-m", "encore_local.cli", "twin", "serve", "--state-dir", str(state_dir), "--stage", stage]
    if cache:
        cmd += ["--cache", cache]
    log = (state_dir / LOG_FILE).open("wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = read_state(state_dir)
        if state is not None:
            return state
        if proc.poll() is not None:
            tail = (state_dir / LOG_FILE).read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise UsageError(f"the twin exited during start-up: {tail[0]} (log: {state_dir / LOG_FILE})")
        time.sleep(0.1)
    proc.terminate()
    raise UsageError(f"the twin did not start within {timeout:.0f} s (log: {state_dir / LOG_FILE})")


def down(state_dir: Path, timeout: float = 15.0) -> int:
    """Stop the twin running from ``state_dir``; returns its pid."""
    state = read_state(state_dir)
    if state is None:
        raise UsageError(f"no twin is running from {state_dir}")
    pid = int(state["pid"])
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
    _state_path(state_dir).unlink(missing_ok=True)
    return pid
