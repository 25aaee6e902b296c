"""Track metadata for the read path: this instance's memory, then the shared cache (an hour), then the tracks
table. Most answers need no cache call for it at all, and a catalog change shows within ``LOCAL_TTL_S``."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from encore.cache import CacheUnavailable, track_metadata_key
from encore.errors import NotFound, StoreUnavailable
from encore.models import TrackInfo

METADATA_TTL_S = 3600
LOCAL_TTL_S = 300
LOCAL_ITEMS = 50_000


class TrackReader(Protocol):
    def metadata(self, track_ids: Sequence[str]) -> dict[str, TrackInfo]: ...


class SharedCache(Protocol):
    def get_many(self, keys: Sequence[str]) -> list[bytes | None]: ...

    def set_many(self, values: dict[str, bytes], ttl_seconds: int) -> None: ...


class Catalog:
    def __init__(self, tracks: TrackReader, cache: SharedCache, clock: Callable[[], float] = time.monotonic) -> None:
        self.tracks, self.cache, self.clock = tracks, cache, clock
        # This instance's memory: track -> (expiry, the entry's JSON). Bytes, not models: the garbage collector
        # walks models (five objects each, 250,000 at the bound) on every full collection, a request's p99
        # (bench/bench_handlers.py); it never walks bytes.
        self._local: dict[str, tuple[float, bytes]] = {}
        self._lock = threading.Lock()

    def _recalled(self, track_ids: Sequence[str]) -> dict[str, TrackInfo]:
        now = self.clock()
        with self._lock:
            held = {t: self._local.get(t) for t in track_ids}
        return {t: TrackInfo.model_validate_json(h[1]) for t, h in held.items() if h is not None and h[0] > now}

    def _remember(self, entries: dict[str, TrackInfo]) -> None:
        expires = self.clock() + LOCAL_TTL_S
        with self._lock:
            for t, info in entries.items():
                self._local.pop(t, None)  # to the end: the oldest go first
                self._local[t] = (expires, info.model_dump_json(exclude_defaults=True).encode())
            while len(self._local) > LOCAL_ITEMS:
                del self._local[next(iter(self._local))]

    def metadata(self, track_ids: Sequence[str], degraded: list[str]) -> dict[str, TrackInfo]:
        """The entries of the tracks the catalog has. A cache that cannot be reached is skipped (its cause added
        to ``degraded``); a tracks table that cannot be read raises ``StoreUnavailable``."""
        found = self._recalled(track_ids)
        shared = [t for t in dict.fromkeys(track_ids) if t not in found]
        cache_down = False
        if shared:
            try:
                for t, raw in zip(shared, self.cache.get_many([track_metadata_key(t) for t in shared]), strict=True):
                    if raw:
                        found[t] = TrackInfo.model_validate({**json.loads(raw), "track_id": t})
            except CacheUnavailable as exc:
                degraded.append(exc.cause)
                cache_down = True
        missing = [t for t in shared if t not in found]
        if missing:
            fetched = self.tracks.metadata(missing)
            found.update(fetched)
            if fetched and not cache_down:
                try:
                    values = {track_metadata_key(t): m.model_dump_json(exclude_defaults=True).encode()
                              for t, m in fetched.items()}  # fmt: skip
                    self.cache.set_many(values, METADATA_TTL_S)
                except CacheUnavailable as exc:
                    degraded.append(exc.cause)
        self._remember({t: found[t] for t in shared if t in found})
        return found

    def track(self, track_id: str) -> TrackInfo:
        """``GET /v1/tracks/{track_id}``: the entry, or ``NotFound``."""
        found = self.metadata([track_id], [])
        if track_id not in found:
            raise NotFound(f"track '{track_id}' is not in the catalog")
        return found[track_id]

    def known(self, track_id: str, degraded: list[str]) -> bool:
        """Whether the catalog has the track; ``True`` when it cannot tell (the model then decides)."""
        try:
            return track_id in self.metadata([track_id], degraded)
        except StoreUnavailable as exc:
            degraded.append(exc.cause)
            return True
