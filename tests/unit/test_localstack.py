"""``make test-localstack`` says plainly why it did not run: no LocalStack, or one without the stack's services."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from encore_local import localstack

pytestmark = pytest.mark.unit


def test_no_localstack_is_a_skip_that_says_why(capsys: pytest.CaptureFixture[str]) -> None:
    assert localstack.main(["--endpoint", "http://127.0.0.1:9"]) == 0
    out = capsys.readouterr().out
    assert "skipped: no LocalStack answers at http://127.0.0.1:9" in out and "needs Docker" in out


@pytest.fixture
def community_edition() -> Iterator[str]:
    """A LocalStack health document without Glue, SageMaker or ElastiCache (its free edition's)."""
    services = {s: "available" for s in localstack.NEEDED if s not in ("glue", "sagemaker", "elasticache")}
    body = json.dumps({"version": "4.0", "edition": "community", "services": services}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_an_edition_without_the_stacks_services_names_them(
    community_edition: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert localstack.main(["--endpoint", community_edition]) == 1
    out = capsys.readouterr().out
    assert "does not provide glue, sagemaker, elasticache" in out
