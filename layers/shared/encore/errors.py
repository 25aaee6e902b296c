"""Domain errors. Each carries the HTTP status it maps to; ``encore.http`` is the one place that maps them."""

from __future__ import annotations

from typing import Any


class EncoreError(Exception):
    status = 500
    code = "internal_error"

    def __init__(self, reason: str, *, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.details = details or []


class BadRequest(EncoreError):
    status, code = 400, "bad_request"


class NotFound(EncoreError):
    status, code = 404, "not_found"


class PayloadTooLarge(EncoreError):
    status, code = 413, "payload_too_large"


class UnsupportedMediaType(EncoreError):
    status, code = 415, "unsupported_media_type"


class DependencyUnavailable(EncoreError):
    """A dependency we cannot answer without (events could not be stored): the client should retry."""

    status, code = 503, "unavailable"

    def __init__(self, reason: str, *, retry_after_s: int = 2) -> None:
        super().__init__(reason)
        self.retry_after_s = retry_after_s


class StoreUnavailable(DependencyUnavailable):
    """A table, stream or cache that failed past its client's own retries (throttled, unreachable, refused).

    Each store raises it for its own client's errors, so logic never sees botocore, PynamoDB or redis. Where
    something can stand in, logic degrades and records ``cause``; where nothing can, ``encore.http`` answers 503
    with Retry-After (nothing was half-written: each write is one conditional or batch call)."""

    def __init__(self, store: str, detail: str = "") -> None:
        super().__init__(f"the {store} store is busy or unreachable; retry shortly", retry_after_s=1)
        self.store, self.detail = store, detail
        self.cause = cause_of(store)


def cause_of(store: str) -> str:
    """The degradation cause a store's failure is counted and logged under (one name per store)."""
    return f"{store}_unavailable"
