"""The web app's delivery: the headers every answer of the site carries, wherever it is served from.

In AWS a CloudFront response headers policy adds them; on the twin ``encore_local.twin.site`` does. The page
loads nothing from another origin (no CDN), so the policy allows only the site itself.
"""

from __future__ import annotations

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"
)
SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Strict-Transport-Security": "max-age=63072000; includeSubDomains",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "strict-origin-when-cross-origin",
}
API_PREFIX = "/v1/"  # what the site forwards to the API (CloudFront: a behaviour; the twin: a proxy)
