"""The web app's delivery: the headers every answer of the site carries, and what the site forwards to the API.

In AWS the stack's CloudFront response headers policy adds them (``cdk_app.site`` builds it from these values);
on the twin ``encore_local.twin.site`` reads that policy back from the synthesized template. The page loads
nothing from another origin (no CDN), so the policy allows only the site itself.
"""

from __future__ import annotations

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"
)
HSTS_MAX_AGE_S = 63_072_000  # two years, with subdomains (the preload list's minimum is one)
REFERRER_POLICY = "strict-origin-when-cross-origin"
FRAME_OPTIONS = "DENY"
SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Strict-Transport-Security": f"max-age={HSTS_MAX_AGE_S}; includeSubDomains",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": FRAME_OPTIONS,
    "Referrer-Policy": REFERRER_POLICY,
}
API_PREFIX = "/v1/"  # what the site forwards to the API (CloudFront: a behaviour; the twin: a proxy)
API_KEY_HEADER = "x-api-key"  # the origin header CloudFront adds to what it forwards (the page holds no key)
