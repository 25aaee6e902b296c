"""In-memory stores, cache and endpoint, shaped by the Protocols that ``encore.recommend``, ``encore.catalog``,
``encore.charts`` and ``encore.ingest`` declare: the logic's unit tests and the handlers' CPU benchmark run on
them. Each can be taken down (``down = True``) to raise what the real one raises when its service fails."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from encore.cache import CacheUnavailable
from encore.errors import DependencyUnavailable, StoreUnavailable
from encore.experiment import LiveTest
from encore.model_client import Answer, ModelRejected, ModelUnavailable
from encore.models import ChartRow, InferenceRequest, InferenceResponse, StoredProfile, TrackInfo
from encore.stores import PlayedTracks, TrackVectors
from encore.vectors import FloatArray


@dataclass
class Profiles:
    items: dict[str, StoredProfile] = field(default_factory=dict)
    plays: dict[str, list[str]] = field(default_factory=dict)
    down: bool = False

    def _check(self) -> None:
        if self.down:
            raise StoreUnavailable("profiles", "throttled")

    def get(self, user_id: str) -> StoredProfile | None:
        self._check()
        return self.items.get(user_id)

    def record_plays(self, user_id: str, region: str, newest_first: Sequence[str], bound: int, now_ms: int) -> None:
        self._check()
        self.plays[user_id] = list(dict.fromkeys([*newest_first, *self.plays.get(user_id, [])]))[:bound]


@dataclass
class Tracks:
    catalog: dict[str, TrackInfo] = field(default_factory=dict)
    vectors: dict[str, TrackVectors] = field(default_factory=dict)
    down: bool = False
    reads: list[list[str]] = field(default_factory=list)

    def metadata(self, track_ids: Sequence[str]) -> dict[str, TrackInfo]:
        if self.down:
            raise StoreUnavailable("tracks", "throttled")
        self.reads.append(list(track_ids))
        return {t: self.catalog[t] for t in track_ids if t in self.catalog}

    def played(self, track_ids: Sequence[str]) -> PlayedTracks:
        if self.down:
            raise StoreUnavailable("tracks", "throttled")
        known = frozenset(t for t in track_ids if t in self.catalog or t in self.vectors)
        return PlayedTracks(known, {t: self.vectors[t] for t in track_ids if t in self.vectors})


@dataclass
class Charts:
    rows: dict[tuple[str, str, str, str], list[ChartRow]] = field(default_factory=dict)
    down: bool = False

    def chart(self, kind: str, region: str, window: str, period: str, limit: int) -> list[ChartRow]:
        if self.down:
            raise StoreUnavailable("charts", "throttled")
        return self.rows.get((kind, region, window, period), [])[:limit]


@dataclass
class Cache:
    values: dict[str, bytes] = field(default_factory=dict)
    generations: dict[str, int] = field(default_factory=dict)
    sessions: dict[str, FloatArray] = field(default_factory=dict)
    down: bool = False

    def _check(self) -> None:
        if self.down:
            raise CacheUnavailable("connection refused")

    def get(self, key: str) -> bytes | None:
        self._check()
        return self.values.get(key)

    def set(self, key: str, value: bytes, ttl_seconds: int) -> None:
        self._check()
        self.values[key] = value

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        self._check()
        return [self.values.get(k) for k in keys]

    def set_many(self, values: dict[str, bytes], ttl_seconds: int) -> None:
        self._check()
        self.values.update(values)

    def session_state(self, user_id: str) -> tuple[int, FloatArray | None]:
        self._check()
        return self.generations.get(user_id, 0), self.sessions.get(user_id)

    def bump_generations(self, user_ids: Sequence[str]) -> None:
        self._check()
        for u in user_ids:
            self.generations[u] = self.generations.get(u, 0) + 1

    def short_vector(self, user_id: str) -> FloatArray | None:
        self._check()
        return self.sessions.get(user_id)

    def set_short_vector(self, user_id: str, vector: FloatArray) -> None:
        self._check()
        self.sessions[user_id] = vector


@dataclass
class Endpoint:
    """Answers with ``answer(request)``; or fails as ``failure`` says (a ``ModelUnavailable`` cause, or
    ``"rejected"``)."""

    answer: Callable[[InferenceRequest], InferenceResponse]
    failure: str | None = None
    requests: list[InferenceRequest] = field(default_factory=list)

    def invoke(self, request: InferenceRequest, variant: str | None = None) -> Answer:
        self.requests.append(request)
        if self.failure == "rejected":
            raise ModelRejected("unknown track")
        if self.failure:
            raise ModelUnavailable(self.failure, "no answer")
        return Answer(self.answer(request), None)


@dataclass
class OnlineTests:
    test: LiveTest | None = None
    readable: bool = True

    def current(self) -> tuple[LiveTest | None, bool]:
        return self.test, self.readable


@dataclass
class Sink:
    records: list[dict[str, Any]] = field(default_factory=list)
    down: bool = False

    def put(self, records: Sequence[dict[str, Any]]) -> int:
        if self.down:
            raise DependencyUnavailable("the event stream did not accept the events; retry the request")
        self.records.extend(records)
        return 0
