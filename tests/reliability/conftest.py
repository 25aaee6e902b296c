"""The twin's HTTP API in front of the served lake."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def http_api(served_lake: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The API over HTTP in two processes (two Lambda instances). The usage plan's throttle is set out of
    reach: these suites measure the service, and its 429s have tests of their own."""
    server = served_lake["services"].api(served_lake["config"], rate=100_000, burst=100_000, workers=2)
    url = server.start()
    try:
        yield {**served_lake, "url": url}
    finally:
        server.stop()
