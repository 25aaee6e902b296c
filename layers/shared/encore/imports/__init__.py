"""Outside data onto Encore's contracts: the pure conversions behind ``encore import``.

One module per source format (``mpd``, ``tracks``, ``lastfm``, ``events``), each turning source rows into
contract rows (listening events, catalog rows, listener rows) or into a rejection with a reason. Standard
library and the contracts only, so the command line and a Glue job share them. Reading files in bulk, progress
and landing in the lake are the caller's (``encore_local.importer`` on one machine).
"""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

# Fixed forever: event ids derive from it, so a re-import (or one resumed after a crash) finds the ids of the
# first and the curate job keeps each event once.
EVENT_NAMESPACE = uuid.UUID("c3ebf10f-864a-4a2a-9a2a-6c2a5e89a025")
EXAMPLES_PER_REASON = 3
RECORD_CHARS = 2_000  # a rejected record is kept whole up to this, then cut (a whole playlist can be long)


_NAMESPACE_BYTES = EVENT_NAMESPACE.bytes


def stable_id(*parts: object) -> str:
    """A UUID5 of ``parts`` (``str(uuid.uuid5(EVENT_NAMESPACE, ...))``): the same source row gives the same id on
    every run. Spelled out because an import makes one per row, and ``uuid.UUID`` costs 6 us of its 10."""
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + "\x1f".join(map(str, parts)).encode()).digest()[:16])  # noqa: S324 - UUID5 is SHA-1 by definition
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass(frozen=True)
class Rejected:
    """A source row (or a whole file) that was not imported: where it was, why, and the row itself."""

    where: str
    reason: str
    record: str

    def to_json(self) -> dict[str, str]:
        return {"where": self.where, "reason": self.reason, "record": self.record}


@dataclass
class Rejections:
    """Every rejected row with its reason; counts by reason and the first few examples of each for the summary."""

    rows: list[Rejected] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)

    def add(self, where: str, reason: str, record: Any) -> None:
        text = record if isinstance(record, str) else repr(record)
        self.rows.append(Rejected(where, reason, text[:RECORD_CHARS]))
        self.counts[reason] += 1

    def extend(self, other: Rejections) -> None:
        self.rows.extend(other.rows)
        self.counts.update(other.counts)

    def __len__(self) -> int:
        return len(self.rows)

    def summary(self) -> dict[str, dict[str, Any]]:
        """``{reason: {"count": n, "examples": [where, ...]}}``, most frequent reason first."""
        examples: dict[str, list[str]] = {}
        for row in self.rows:
            seen = examples.setdefault(row.reason, [])
            if len(seen) < EXAMPLES_PER_REASON:
                seen.append(row.where)
        return {reason: {"count": n, "examples": examples[reason]} for reason, n in self.counts.most_common()}
