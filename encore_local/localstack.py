"""``make test-localstack``: deploy the stack into a reachable LocalStack with ``cdklocal`` and run the suites
that exercise the deployed stack there; say plainly why nothing ran when no LocalStack answers.

LocalStack needs Docker (and, for current releases, an account token); the twin (``make test``) needs neither and
runs everything offline. This is for machines that have LocalStack: ``AWS_ENDPOINT_URL`` (default
``http://localhost:4566``) names it. What LocalStack's editions provide is in docs/twin.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ENDPOINT = "http://localhost:4566"
# The services Encore's stack deploys and calls (LocalStack's names for them).
NEEDED = ("cloudformation", "s3", "dynamodb", "firehose", "lambda", "stepfunctions", "glue", "sagemaker",
          "elasticache", "apigateway", "iam", "sts", "kms", "sns", "logs", "events", "scheduler")  # fmt: skip


def health(endpoint: str, timeout: float = 3.0) -> dict[str, Any] | str:
    """LocalStack's health document, or why there is none."""
    try:
        with urllib.request.urlopen(f"{endpoint}/_localstack/health", timeout=timeout) as answer:  # noqa: S310 - a URL the user set
            return dict(json.load(answer))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"


def missing_services(document: dict[str, Any]) -> list[str]:
    services = document.get("services", {})
    return [s for s in NEEDED if services.get(s) not in ("available", "running")]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--endpoint", default=os.environ.get("AWS_ENDPOINT_URL", DEFAULT_ENDPOINT))
    ap.add_argument("--stage", default="dev")
    args = ap.parse_args(argv)
    found = health(args.endpoint)
    if isinstance(found, str):
        print(f"test-localstack: skipped: no LocalStack answers at {args.endpoint} ({found}). LocalStack needs "
              "Docker and, for current releases, an account token; `make test` runs the whole stack on the "
              "offline twin instead.")  # fmt: skip
        return 0
    missing = missing_services(found)
    print(f"test-localstack: LocalStack {found.get('version', '?')} ({found.get('edition', '?')}) at {args.endpoint}")
    if missing:
        print(f"test-localstack: this edition does not provide {', '.join(missing)}: the stack cannot deploy here; "
              "those parts stay on the twin (docs/twin.md)")  # fmt: skip
        return 1
    env = os.environ | {"AWS_ENDPOINT_URL": args.endpoint, "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION",
                        "us-east-1"), "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}  # fmt: skip
    cdklocal = str(ROOT / "node_modules" / ".bin" / "cdklocal")
    for step in (["bootstrap"], ["deploy", "--require-approval", "never", "-c", f"stage={args.stage}"]):
        proc = subprocess.run([cdklocal, *step, "--no-notices"], cwd=ROOT, env=env, check=False)
        if proc.returncode != 0:
            print(f"test-localstack: cdklocal {step[0]} failed (exit {proc.returncode})")
            return proc.returncode
    suite = [sys.executable, "-m", "pytest", "-m", "localstack", "tests/localstack", "-p", "no:cacheprovider"]
    return subprocess.run(suite, cwd=ROOT, env=env | {"ENCORE_LOCALSTACK_STAGE": args.stage}, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
