"""Rows already in the listening-event contract (JSON lines, CSV or Parquet), checked by the contract itself.

Each row is validated by ``encore.models.ListeningEvent``, the model the events API validates with, so an
imported event is exactly as valid as a posted one. A blank cell is an absent field; a CSV cell holding a whole
number is read as one. A row without an ``event_id`` gets a UUID5 of its content, so importing the same file
again adds nothing twice.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from encore.imports import stable_id
from encore.models import ListeningEvent

EVENT_FIELDS = tuple(ListeningEvent.model_fields)
INTEGER_FIELDS = ("timestamp", "played_ms", "track_duration_ms")
_WHOLE = re.compile(r"^-?[0-9]{1,18}$")
_NUMBERS = re.compile(r"[0-9]+")


def header_problem(columns: list[str]) -> str | None:
    """Why a CSV or Parquet file with these columns is not in the event contract, or None."""
    unknown = [c for c in columns if c not in EVENT_FIELDS]
    if unknown:
        return f"not in the event contract: unknown column(s) {', '.join(unknown)} (known: {', '.join(EVENT_FIELDS)})"
    return None


def _reason(exc: ValidationError) -> str:
    """The contract's complaints, one per field, with the values taken out so that rows count by cause."""
    parts = []
    for error in exc.errors():
        field = ".".join(str(p) for p in error["loc"]) or "event"
        message = str(error["msg"]).removeprefix("Value error, ")
        parts.append(f"{field}: {_NUMBERS.sub('N', message)}")
    return "; ".join(dict.fromkeys(parts))


def event_from_row(row: Mapping[str, Any], now_ms: int) -> tuple[dict[str, Any] | None, str]:
    """The event as the raw zone stores it, or None and why the contract rejects the row."""
    clean = {k: v for k, v in row.items() if v is not None and v != ""}
    for field in INTEGER_FIELDS:
        value = clean.get(field)
        # CSV text, or a float from Parquet that pandas wrote from a column with gaps
        if (isinstance(value, str) and _WHOLE.match(value.strip())) or (
            isinstance(value, float) and value.is_integer()
        ):
            clean[field] = int(value)
    if "event_id" not in clean:
        clean["event_id"] = stable_id("events", json.dumps(clean, sort_keys=True, default=str))
    try:
        event = ListeningEvent.model_validate(clean, context={"now_ms": now_ms})
    except ValidationError as exc:
        return None, _reason(exc)
    return event.model_dump(mode="json", exclude_none=True), ""
