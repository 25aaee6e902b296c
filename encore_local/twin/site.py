"""The twin's CloudFront distribution for the web app: ``webapp/`` at ``/``, and ``/v1/*`` forwarded to the
twin's API Gateway with the API key added, as the distribution's origin custom header adds it in AWS.

The key stays out of the page: a browser on this origin calls ``/v1/...`` with no key, and the API itself, on
its own port, still refuses a request without one.
"""

from __future__ import annotations

import json
import mimetypes
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from encore.site import API_PREFIX, SECURITY_HEADERS
from encore_local.loopback import LoopbackServer, reply
from encore_local.twin.apigateway import DEFAULT_API_KEY, FramingError, TwinApi, decompressed, read_body

WEBAPP = Path(__file__).resolve().parents[2] / "webapp"
TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".html": "text/html; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png"}  # fmt: skip


class TwinSite(LoopbackServer):
    def __init__(self, api: TwinApi, *, root: Path = WEBAPP, api_key: str = DEFAULT_API_KEY,
                 host: str = "127.0.0.1", port: int = 0) -> None:  # fmt: skip
        self.api, self.root, self.api_key = api, root.resolve(), api_key
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def __getattr__(self, name: str) -> Any:
                if name.startswith("do_"):
                    return self._handle
                raise AttributeError(name)

            def _handle(self) -> None:
                if urlsplit(self.path).path.startswith(API_PREFIX):
                    try:
                        body = decompressed(read_body(self.rfile, self.headers), self.headers.get("Content-Encoding"))
                    except FramingError as exc:
                        self._send(exc.status, {"message": exc.message}, {})
                        return
                    headers = [(k, v) for k, v in self.headers.items() if k.lower() != "x-api-key"]
                    status, payload, out = site.api.dispatch(
                        self.command, self.path, [*headers, ("x-api-key", site.api_key)], body
                    )
                    self._send(status, payload, out)
                elif self.command in ("GET", "HEAD"):
                    self._send(*site.file(urlsplit(self.path).path))
                else:
                    self._send(405, {"message": "Method Not Allowed"}, {"Allow": "GET, HEAD"})

            def _send(self, status: int, payload: Any, headers: dict[str, str]) -> None:
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                headers.setdefault("Content-Type", "application/json")
                reply(self, status, data, {**headers, **SECURITY_HEADERS}, head_only=self.command == "HEAD")

        LoopbackServer.__init__(self, Handler, host, port, "twin-site")

    def file(self, path: str) -> tuple[int, bytes, dict[str, str]]:
        """A file of the app (``/`` is ``index.html``), as the private bucket behind the distribution serves it."""
        target = (self.root / unquote(path).lstrip("/")).resolve()
        if path in ("", "/"):
            target = self.root / "index.html"
        if self.root not in target.parents or not target.is_file():
            return 404, b"Not Found", {"Content-Type": "text/plain; charset=utf-8"}
        kind = TYPES.get(target.suffix) or mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        return 200, target.read_bytes(), {"Content-Type": kind, "Cache-Control": "no-cache"}
