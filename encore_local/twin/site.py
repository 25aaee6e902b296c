"""The twin's CloudFront: the stack's distribution, read from the synthesized template, in front of the twin's
API Gateway.

- The default behaviour's origin is the site bucket: a file is read from it (the files ``BucketDeployment``
  published there at provisioning, ``encore_local.twin.provision``), ``/`` is the default root object, and a key
  the bucket lacks is S3's 403 ``AccessDenied`` (origin access control cannot list the bucket).
- The API behaviour (``/v1/*``) forwards the request to the twin's API with the origin's custom headers, the
  API key among them, resolved from its secret as CloudFormation resolves them. The Host header is not passed.
- Every answer gets the headers of the behaviour's response headers policy (``SecurityHeadersConfig`` as
  CloudFront renders it), overriding the origin's.

The key stays out of the page: a browser on this origin calls ``/v1/...`` with no key, and the API itself, on
its own port, still refuses a request without one. Not reproduced: TLS and the HTTPS redirect (the twin serves
plain HTTP on loopback), caching and invalidations, compression, access logs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import unquote, urlsplit

from botocore.exceptions import ClientError

from encore_local.loopback import LoopbackServer, reply
from encore_local.twin.apigateway import FramingError, TwinApi, decompressed, read_body
from encore_local.twin.assembly import TwinStack
from encore_local.twin.provision import dynamic_references

_ACCESS_DENIED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>'
)


def response_headers(policy: dict[str, Any]) -> dict[str, str]:
    """The headers a ``ResponseHeadersPolicyConfig`` adds, as CloudFront writes them."""
    security = policy.get("SecurityHeadersConfig", {})
    out: dict[str, str] = {}
    if "ContentSecurityPolicy" in security:
        out["Content-Security-Policy"] = security["ContentSecurityPolicy"]["ContentSecurityPolicy"]
    if "StrictTransportSecurity" in security:
        hsts = security["StrictTransportSecurity"]
        value = f"max-age={int(hsts['AccessControlMaxAgeSec'])}"
        value += "; includeSubDomains" if hsts.get("IncludeSubdomains") else ""
        out["Strict-Transport-Security"] = value + ("; preload" if hsts.get("Preload") else "")
    if "ContentTypeOptions" in security:
        out["X-Content-Type-Options"] = "nosniff"
    if "FrameOptions" in security:
        out["X-Frame-Options"] = security["FrameOptions"]["FrameOption"]
    if "ReferrerPolicy" in security:
        out["Referrer-Policy"] = security["ReferrerPolicy"]["ReferrerPolicy"]
    for header in policy.get("CustomHeadersConfig", {}).get("Items", []):
        out[header["Header"]] = header["Value"]
    return out


@dataclass(frozen=True)
class Distribution:
    """What the twin needs of the stack's one distribution."""

    bucket: str
    root_object: str
    api_pattern: str  # e.g. "/v1/*"
    origin_headers: dict[str, str]  # the API origin's custom headers, dynamic references as written
    headers: dict[str, str]  # the response headers policy's

    @classmethod
    def of(cls, stack: TwinStack) -> Distribution:
        found = stack.of_type("AWS::CloudFront::Distribution")
        if len(found) != 1:
            raise ValueError(f"the twin's site expects one CloudFront distribution in {stack.stack_name}: {len(found)}")
        lid = next(iter(found))
        raw = found[lid]["Properties"]["DistributionConfig"]
        config = stack.properties(lid)["DistributionConfig"]
        origins = {o["Id"]: o for o in config["Origins"]}
        default = origins[config["DefaultCacheBehavior"]["TargetOriginId"]]
        api = next(b for b in config.get("CacheBehaviors", []) if "CustomOriginConfig" in origins[b["TargetOriginId"]])
        api_origin = origins[api["TargetOriginId"]]
        policy = raw["DefaultCacheBehavior"]["ResponseHeadersPolicyId"]["Ref"]
        policy_config = stack.properties(policy)["ResponseHeadersPolicyConfig"]
        return cls(
            bucket=str(default["DomainName"]).split(".s3.", 1)[0],  # <bucket>.s3.<region>.amazonaws.com
            root_object=str(config.get("DefaultRootObject", "")),
            api_pattern=str(api["PathPattern"]),
            origin_headers={h["HeaderName"]: str(h["HeaderValue"]) for h in api_origin.get("OriginCustomHeaders", [])},
            headers=response_headers(policy_config),
        )


class TwinSite(LoopbackServer):
    def __init__(self, api: TwinApi, client: Callable[[str], Any], *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.api, self.s3 = api, client("s3")
        self.distribution = Distribution.of(api.stack)
        self.origin_headers = {k: dynamic_references(v, client) for k, v in self.distribution.origin_headers.items()}
        prefix = self.distribution.api_pattern.rstrip("*")
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
                if urlsplit(self.path).path.startswith(prefix):
                    try:
                        body = decompressed(read_body(self.rfile, self.headers), self.headers.get("Content-Encoding"))
                    except FramingError as exc:
                        self._send(exc.status, {"message": exc.message}, {})
                        return
                    self._send(*site.forward(self.command, self.path, list(self.headers.items()), body))
                elif self.command in ("GET", "HEAD"):
                    self._send(*site.file(urlsplit(self.path).path))
                else:  # the default behaviour allows GET and HEAD only
                    self._send(403, b"This distribution is not configured to allow the HTTP request method",
                               {"Content-Type": "text/plain; charset=utf-8"})  # fmt: skip

            def _send(self, status: int, payload: Any, headers: dict[str, str]) -> None:
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                headers.setdefault("Content-Type", "application/json")
                out = {k: v for k, v in headers.items() if k.lower() not in {h.lower() for h in site.headers}}
                reply(self, status, data, out | site.headers, head_only=self.command == "HEAD")

        LoopbackServer.__init__(self, Handler, host, port, "twin-site")

    @property
    def headers(self) -> dict[str, str]:
        return self.distribution.headers

    def forward(
        self, method: str, path: str, headers: list[tuple[str, str]], body: bytes | None
    ) -> tuple[int, Any, dict[str, str]]:
        """The API behaviour: every viewer header but Host, then the origin's custom headers (which replace a
        viewer's header of the same name, as CloudFront's do)."""
        custom = {k.lower() for k in self.origin_headers}
        kept = [(k, v) for k, v in headers if k.lower() not in custom and k.lower() != "host"]
        return self.api.dispatch(method, path, [*kept, *self.origin_headers.items()], body)

    def file(self, path: str) -> tuple[int, bytes, dict[str, str]]:
        """An object of the site bucket (``/`` is the default root object)."""
        key = unquote(path).lstrip("/") or self.distribution.root_object
        try:
            found = self.s3.get_object(Bucket=self.distribution.bucket, Key=key)
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("NoSuchKey", "404", "InvalidArgument", "KeyTooLongError"):
                return 403, _ACCESS_DENIED, {"Content-Type": "application/xml"}
            raise
        headers = {"Content-Type": found.get("ContentType", "application/octet-stream"), "ETag": found["ETag"]}
        return 200, found["Body"].read(), headers
