"""The one place boto3 clients are made: cached per (service, region), reset for tests.

boto3 itself honours ``AWS_ENDPOINT_URL`` and ``AWS_ENDPOINT_URL_<SERVICE>`` (for example
``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME``), so those variables are the only switch between the offline twin,
LocalStack and AWS; nothing else in the code knows where it runs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import boto3
from botocore.config import Config

# Three attempts with botocore's standard backoff (a second or two in all). Not "adaptive": its client-side rate
# limiter blocks later calls once a table throttles, and a request under a fully throttled table took over 30 s
# (measured on the twin), past API Gateway's 29 s; the request should degrade instead.
RETRIES: dict[str, Any] = {"mode": "standard", "total_max_attempts": 3}
# Short connect/read timeouts: a Lambda that waits on a sick dependency should degrade, not time out.
_DEFAULT_CONFIG = Config(connect_timeout=2, read_timeout=5, retries=RETRIES, tcp_keepalive=True)


@functools.cache
def get_client(service: str, region: str | None = None, read_timeout: float | None = None) -> Any:
    """A cached low-level client. ``read_timeout`` overrides the default for latency-bound calls."""
    config = _DEFAULT_CONFIG if read_timeout is None else _DEFAULT_CONFIG.merge(Config(read_timeout=read_timeout))
    return boto3.session.Session().client(service, region_name=region, config=config)


@functools.cache
def get_resource(service: str, region: str | None = None) -> Any:
    return boto3.session.Session().resource(service, region_name=region, config=_DEFAULT_CONFIG)


_RESETS: list[Callable[[], None]] = []


def on_reset(forget: Callable[[], None]) -> None:
    """Register what else holds connections (PynamoDB keeps its client on the model class)."""
    _RESETS.append(forget)


def reset_clients() -> None:
    """Forget cached clients (tests change endpoints and credentials between cases)."""
    get_client.cache_clear()
    get_resource.cache_clear()
    for forget in _RESETS:
        forget()
