"""Data contracts: the listening event, track, user profile, recommendation and inference payloads.

Every model forbids unknown fields and uses strict types, so a client that sends ``"played_ms": "12"`` or a
misspelt field learns it at once instead of having the value silently coerced or dropped.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from encore.regions import ISO_3166_ALPHA2
from encore.vectors import FloatArray

MAX_BATCH_EVENTS = 500
MAX_TRACK_DURATION_MS = 6 * 3600 * 1000
# A client clock may run a little fast; an event further ahead than this is a bug (or seconds sent as ms).
MAX_FUTURE_SKEW_MS = 3600 * 1000
# 2000-01-01: anything earlier is almost surely epoch seconds sent where milliseconds are expected.
MIN_TIMESTAMP_MS = 946_684_800_000
PLAYED_OVER_DURATION_TOLERANCE_MS = 5_000

Identifier = Annotated[
    StrictStr,
    Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$"),
]
Uuid = Annotated[
    StrictStr,
    Field(pattern=r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"),
]
Number = StrictFloat | StrictInt


class Action(StrEnum):
    LISTEN = "listen"  # played for a while, stopped before the end
    SKIP = "skip"  # left the track (usually early)
    COMPLETE = "complete"  # played to the end


class Source(StrEnum):
    APP = "app"
    SIMULATION = "simulation"
    IMPORT = "import"


class Context(StrEnum):
    HOME = "home"
    NEXT = "next"
    SIMILAR = "similar"
    CHART = "chart"
    SEARCH = "search"
    OTHER = "other"


class Surface(StrEnum):
    HOME = "home"
    NEXT = "next"
    SIMILAR = "similar"
    RANK = "rank"  # a list the app supplies, ordered for the listener


class Reason(StrEnum):
    """Why an item is on the page."""

    PERSONALISED = "personalised"  # the model ranked it for this listener (or this seed)
    PROMOTED = "promoted"  # a promotion's share of the page
    EXPLORATION = "exploration"  # a new release without plays yet, given a place so it gets heard
    TRENDING = "trending"  # the region's trending chart, where the model could not answer
    POPULAR = "popular"  # the model's most popular tracks: it knows nothing of the listener yet
    SUPPLIED = "supplied"  # the app's own order: the rank route's answer when the model could not rank the list


class _Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)


def _check_region(value: str | None) -> str | None:
    if value is not None and value not in ISO_3166_ALPHA2:
        raise ValueError(f"'{value}' is not an ISO 3166-1 alpha-2 country code (for example US, GB, VN)")
    return value


class ListeningEvent(_Contract):
    """One player event. ``event_id`` is the client's UUID: the idempotency and de-duplication key."""

    event_id: Uuid
    user_id: Identifier
    track_id: Identifier
    action: Action
    timestamp: StrictInt = Field(description="epoch milliseconds")
    played_ms: StrictInt = Field(ge=0, le=MAX_TRACK_DURATION_MS)
    track_duration_ms: StrictInt = Field(gt=0, le=MAX_TRACK_DURATION_MS)
    session_id: Identifier | None = None
    region: StrictStr = Field(min_length=2, max_length=2)
    source: Source = Source.APP
    context: Context = Context.OTHER
    recommendation_id: Identifier | None = None

    _check_region = field_validator("region")(_check_region)

    @field_validator("timestamp")
    @classmethod
    def _timestamp_in_range(cls, value: int, info: ValidationInfo) -> int:
        now_ms = (info.context or {}).get("now_ms") or int(time.time() * 1000)
        if value < MIN_TIMESTAMP_MS:
            raise ValueError("must be epoch milliseconds (this looks like seconds, or is before 2000-01-01)")
        if value > now_ms + MAX_FUTURE_SKEW_MS:
            raise ValueError("is more than one hour in the future; check the client clock")
        return value

    @model_validator(mode="after")
    def _played_within_duration(self) -> Self:
        if self.played_ms > self.track_duration_ms + PLAYED_OVER_DURATION_TOLERANCE_MS:
            raise ValueError(
                f"played_ms ({self.played_ms}) exceeds track_duration_ms ({self.track_duration_ms}); "
                "send one event per play"
            )
        return self


class EventBatch(_Contract):
    """The body of ``POST /v1/events``."""

    events: list[ListeningEvent] = Field(min_length=1, max_length=MAX_BATCH_EVENTS)

    @field_validator("events")
    @classmethod
    def _each_event_once(cls, events: list[ListeningEvent]) -> list[ListeningEvent]:
        # One event id names one event: a batch that holds one twice is a client bug (a queue sent twice over),
        # and which of the two to keep cannot be told.
        first: dict[str, int] = {}
        twice = []
        for i, event in enumerate(events):
            if event.event_id in first:
                twice.append(f"events.{i} repeats the event_id of events.{first[event.event_id]}")
            first.setdefault(event.event_id, i)
        if twice:
            more = f" (and {len(twice) - 3} more)" if len(twice) > 3 else ""
            raise ValueError(f"each event must be sent once: {'; '.join(twice[:3])}{more}")
        return events


class AudioFeatures(_Contract):
    """Spotify-style audio features; the ranges are those of the public tracks dataset."""

    danceability: Number = Field(ge=0, le=1)
    energy: Number = Field(ge=0, le=1)
    key: StrictInt = Field(ge=-1, le=11)
    loudness: Number = Field(ge=-60, le=5)
    mode: StrictInt = Field(ge=0, le=1)
    speechiness: Number = Field(ge=0, le=1)
    acousticness: Number = Field(ge=0, le=1)
    instrumentalness: Number = Field(ge=0, le=1)
    liveness: Number = Field(ge=0, le=1)
    valence: Number = Field(ge=0, le=1)
    tempo: Number = Field(ge=0, le=300)
    time_signature: StrictInt = Field(ge=0, le=7)


class Track(_Contract):
    track_id: Identifier
    name: StrictStr = Field(min_length=1, max_length=500)
    artist_id: Identifier
    artist_name: StrictStr = Field(min_length=1, max_length=500)
    album: StrictStr = Field(max_length=500)
    genres: list[StrictStr] = Field(max_length=20)
    release_date: date
    duration_ms: StrictInt = Field(gt=0, le=MAX_TRACK_DURATION_MS)
    explicit: StrictBool = False
    audio: AudioFeatures
    lyrics: StrictStr | None = Field(None, max_length=20_000)
    image_url: StrictStr | None = Field(None, max_length=2048)
    # Filled by the serving side (charts job, model load), absent in a catalog import.
    plays_7d: StrictInt | None = Field(None, ge=0)
    plays_total: StrictInt | None = Field(None, ge=0)
    cf_vector: list[Number] | None = None
    content_vector: list[Number] | None = None


class UserProfile(_Contract):
    user_id: Identifier
    display_name: StrictStr | None = Field(None, max_length=200)
    region: StrictStr = Field(min_length=2, max_length=2)
    signup_date: date | None = None
    long_term_vector: list[Number] | None = None
    model_version: StrictStr | None = None
    recently_played: list[Identifier] = Field(default_factory=list, max_length=1000)
    updated_at: StrictInt | None = Field(None, description="epoch milliseconds")

    _check_region = field_validator("region")(_check_region)


class ProfileUpdate(_Contract):
    """The body of ``PUT /v1/users/{user_id}``: the fields a client may set."""

    display_name: StrictStr | None = Field(None, max_length=200)
    region: StrictStr = Field(min_length=2, max_length=2)
    signup_date: date | None = None

    _check_region = field_validator("region")(_check_region)

    @field_validator("signup_date")
    @classmethod
    def _signed_up_already(cls, value: date | None) -> date | None:
        # A day of slack for clients ahead of UTC; the year 2000 as for event timestamps.
        if value is not None and not date(2000, 1, 1) <= value <= date.fromtimestamp(time.time() + 86_400):
            raise ValueError("must be a day between 2000-01-01 and today")
        return value


MAX_LISTED = 100  # genres, artists or tracks named in one filter
Genre = Annotated[StrictStr, Field(min_length=1, max_length=100)]


class CatalogFilter(_Contract):
    """Which tracks may be recommended, by what the catalog says of them; applied inside the model's exact top-K
    (``sagemaker/filters.py`` turns it into a mask over the catalog). Every key set must hold."""

    genres_in: list[Genre] | None = Field(None, min_length=1, max_length=MAX_LISTED, description="any of these")
    genres_not_in: list[Genre] | None = Field(None, min_length=1, max_length=MAX_LISTED, description="none of these")
    explicit: StrictBool | None = Field(None, description="false leaves explicit tracks out")
    released_within_days: StrictInt | None = Field(None, ge=0, le=36_500)
    released_before: date | None = None
    exclude_artists: list[Identifier] | None = Field(None, min_length=1, max_length=MAX_LISTED)

    def spec(self) -> dict[str, Any]:
        """The keys set, as the endpoint takes them."""
        return self.model_dump(mode="json", exclude_none=True)

    def joined(self, other: CatalogFilter) -> CatalogFilter:
        """Both filters at once; a key both set is refused (which of the two was meant cannot be told)."""
        both = set(self.spec()) & set(other.spec())
        if both:
            raise ValueError(f"both set {', '.join(sorted(both))}")
        return CatalogFilter.model_validate({**self.spec(), **other.spec()})

    def allows(self, track: TrackInfo, today: date) -> bool:
        """Whether a track's catalog entry passes (the trending fallback's check, where the model is not there to
        apply the filter). The same rules as the model's mask: genres compared in lower case, an unknown release
        date passes no date filter, an unknown explicit flag counts as not explicit."""
        genres = {g.lower() for g in track.genres}
        passes = (
            self.genres_in is None or bool(genres & {g.lower() for g in self.genres_in}),
            self.genres_not_in is None or not genres & {g.lower() for g in self.genres_not_in},
            self.explicit is not False or track.explicit is not True,
            self.exclude_artists is None or track.artist_id not in self.exclude_artists,
        )
        if not all(passes) or (self.released_within_days is None and self.released_before is None):
            return all(passes)
        try:
            released = date.fromisoformat(str(track.release_date)[:10])
        except ValueError:
            return False
        within = self.released_within_days is None or (today - released).days <= self.released_within_days
        return within and (self.released_before is None or released < self.released_before)


class Promotion(_Contract):
    """A named promotion: the tracks its filter selects get ``share`` of a page's places, the best of them for
    each listener."""

    filter: CatalogFilter
    share: Number = Field(gt=0, le=0.5, description="of the page's places, e.g. 0.2")

    @field_validator("filter")
    @classmethod
    def _selects(cls, value: CatalogFilter) -> CatalogFilter:
        if not value.spec():
            raise ValueError("must select tracks: an empty filter promotes the whole catalog")
        return value


class RecommendationItem(_Contract):
    track_id: Identifier
    score: Number
    cf: Number | None = None
    content: Number | None = None
    source: StrictStr = Field("model", description="model | trending | chart | popular")
    reason: Reason = Reason.PERSONALISED
    name: StrictStr | None = None
    artist_name: StrictStr | None = None
    image_url: StrictStr | None = None


class RecommendationResponse(_Contract):
    recommendation_id: StrictStr
    surface: StrictStr
    model_version: StrictStr | None
    fallback: StrictBool = False
    fallback_reason: StrictStr | None = None
    # The endpoint's production variant that answered ("champion", or "challenger" while an online test runs).
    variant: StrictStr | None = None
    filter: AppliedFilter | None = Field(None, description="the filter the answer holds to")
    promotion: StrictStr | None = Field(None, description="the promotion given places on the page")
    items: list[RecommendationItem]


class AppliedFilter(_Contract):
    name: StrictStr | None = Field(None, description="the named filter asked for, if one was")
    spec: dict[str, Any] = Field(description="every key that applied: the named filter's and the request's")
    exclude_tracks: list[StrictStr] = Field(default_factory=list)


class RankRequest(_Contract):
    """The body of ``POST /v1/users/{user_id}/rank``."""

    track_ids: list[Identifier] = Field(min_length=1, max_length=500)

    @field_validator("track_ids")
    @classmethod
    def _each_once(cls, ids: list[Identifier]) -> list[Identifier]:
        twice = sorted({t for t in ids if ids.count(t) > 1}) if len(set(ids)) < len(ids) else []
        if twice:
            raise ValueError(f"each track must be listed once: {', '.join(twice[:5])} repeated")
        return ids


class RankResponse(RecommendationResponse):
    unknown: list[StrictStr] = Field(default_factory=list, description="supplied ids not in the catalog")
    filtered: list[StrictStr] = Field(default_factory=list, description="supplied ids the filter left out")


class InferenceWeights(_Contract):
    """The blend weights the stage configures (``config.weights``), sent with every request."""

    cf: Number = Field(ge=0, le=1)
    content: Number = Field(ge=0, le=1)
    long_term: Number = Field(ge=0, le=1)
    short_term: Number = Field(ge=0, le=1)
    ema_keep: Number = Field(ge=0, le=1)


FiniteNumber = Annotated[StrictFloat, Field(allow_inf_nan=False)] | StrictInt
Vector = Annotated[list[FiniteNumber], Field(min_length=1)]


def _catalog_filter(value: dict[str, Any]) -> dict[str, Any]:
    return CatalogFilter.model_validate(value).spec()


def _selecting_filter(value: dict[str, Any]) -> dict[str, Any]:
    spec = _catalog_filter(value)
    if not spec:
        raise ValueError("must select tracks: an empty filter promotes the whole catalog")
    return spec


class InferenceRequest(_Contract):
    """What the serving Lambda sends the SageMaker endpoint."""

    surface: Surface
    user_vector: Vector | None = None
    short_vector: Vector | None = None
    # The model version whose factor space the vectors are in: a model of another version (a challenger) derives
    # its own from history and recent instead.
    vectors_of: StrictStr | None = None
    seed_track_id: Identifier | None = None
    exclude: list[Identifier] = Field(default_factory=list, max_length=5000)
    # What the ranking stage knows of the listener: liked tracks (the profile's, from the last training) and the
    # recent plays, newest first (kept live by the events path).
    history: list[Identifier] = Field(default_factory=list, max_length=1000)
    recent: list[Identifier] = Field(default_factory=list, max_length=100)
    k: StrictInt = Field(20, ge=1, le=500)
    weights: InferenceWeights | None = None
    filter: Annotated[dict[str, Any], AfterValidator(_catalog_filter)] | None = None  # CatalogFilter.spec()
    promotion: InferencePromotion | None = None
    candidates: list[Identifier] | None = Field(None, min_length=1, max_length=500)  # surface rank
    fresh_share: Number = Field(0.1, ge=0, le=0.5)

    @model_validator(mode="after")
    def _surface_needs(self) -> Self:
        if self.surface in (Surface.NEXT, Surface.SIMILAR) and self.seed_track_id is None:
            raise ValueError(f"surface '{self.surface}' needs seed_track_id")
        if self.surface is Surface.HOME and self.user_vector is None and self.short_vector is None:
            raise ValueError("surface 'home' needs user_vector or short_vector")
        if self.surface is Surface.RANK and not self.candidates:
            raise ValueError("surface 'rank' needs candidates")
        if self.surface is Surface.RANK and self.promotion is not None:
            raise ValueError("surface 'rank' orders the tracks it is given: it takes no promotion")
        return self


class InferencePromotion(_Contract):
    filter: Annotated[dict[str, Any], AfterValidator(_selecting_filter)]  # CatalogFilter.spec()
    k: StrictInt = Field(ge=1, le=500)


class InferenceItem(_Contract):
    track_id: Identifier
    # The serving path caps tracks per artist before it fetches metadata, so it reads only what it returns.
    artist_id: StrictStr | None = None
    score: Number
    cf: Number | None = None
    content: Number | None = None
    reason: Reason = Reason.PERSONALISED


class InferenceResponse(_Contract):
    items: list[InferenceItem]
    model_version: StrictStr
    promoted: list[InferenceItem] = Field(default_factory=list)
    unknown: list[StrictStr] = Field(default_factory=list)
    filtered: list[StrictStr] = Field(default_factory=list)


class DeletionResponse(_Contract):
    """The answer to ``DELETE /v1/users/{user_id}``: what is gone now, what goes in the next nightly run, what
    goes later."""

    user_id: StrictStr
    profile_found: StrictBool = Field(description="whether a profile or vector item was there to delete")
    deleted_now: list[StrictStr]
    next_run: list[StrictStr]
    later: list[StrictStr]
    purge_requested_at_ms: StrictInt


class TrackInfo(BaseModel):
    """A track as the tracks table serves it (``TrackStore.metadata``, ``GET /v1/tracks/{track_id}``): what a
    page shows and what the filters read. Fields are optional: a catalog written by an older import may lack some."""

    model_config = ConfigDict(frozen=True)

    track_id: str
    name: str | None = None
    artist_id: str | None = None
    artist_name: str | None = None
    album: str | None = None
    genres: list[str] = Field(default_factory=list)
    duration_ms: int | None = None
    image_url: str | None = None
    explicit: bool | None = None
    release_date: str | None = None


@dataclass(frozen=True)
class StoredProfile:
    """A listener as the users table holds them (``ProfileStore.get``): the profile the API and the events path
    write, and the model's long-term vector and liked history that the nightly run loads."""

    user_id: str
    display_name: str | None = None
    region: str | None = None
    signup_date: str | None = None
    recently_played: tuple[str, ...] = ()
    updated_at: int | None = None
    long_term_vector: FloatArray | None = None
    history: tuple[str, ...] = ()
    model_version: str | None = None


class ProfileView(BaseModel):
    """``GET /v1/users/{user_id}``: the profile, and whether the model has a vector for the listener."""

    user_id: str
    display_name: str | None = None
    region: str | None = None
    signup_date: str | None = None
    recently_played: list[str] = Field(default_factory=list)
    model_version: str | None = None
    updated_at: int | None = None
    has_long_term_vector: bool = False

    @classmethod
    def of(cls, profile: StoredProfile) -> ProfileView:
        return cls(
            user_id=profile.user_id,
            display_name=profile.display_name,
            region=profile.region,
            signup_date=profile.signup_date,
            recently_played=list(profile.recently_played),
            model_version=profile.model_version,
            updated_at=profile.updated_at,
            has_long_term_vector=profile.long_term_vector is not None,
        )


@dataclass(frozen=True)
class ChartRow:
    """One ranked track of a chart as the charts table holds it (``ChartStore.chart``)."""

    rank: int
    track_id: str
    plays: int
    period: str | None


class ChartEntry(BaseModel):
    rank: int
    track_id: str
    plays: int
    name: str | None = None
    artist_name: str | None = None


class Chart(BaseModel):
    """``GET /v1/charts/{region}`` and ``GET /v1/trending``."""

    region: str
    window: str
    period: str | None
    items: list[ChartEntry] = Field(default_factory=list)


def _in_utc(moment: datetime) -> datetime:
    """A time in UTC (a time without an offset is taken as UTC); one whose offset moves it past year 1 or 9999
    is refused (Python cannot represent it)."""
    try:
        return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    except OverflowError:
        raise ValueError("with its UTC offset this time falls outside the years 1 to 9999") from None


UtcTime = Annotated[datetime, AfterValidator(_in_utc)]


class FieldError(_Contract):
    field: StrictStr
    reason: StrictStr


class ErrorBody(_Contract):
    """Every 4xx and 5xx the API itself answers."""

    error: StrictStr = Field(description="bad_request | not_found | payload_too_large | unavailable | ...")
    reason: StrictStr = Field(description="what went wrong, for a person")
    errors: list[FieldError] | None = Field(None, description="one entry per bad field, the first 20")
    errors_not_listed: StrictInt | None = Field(None, description="bad fields past the first 20, not listed")


def field_errors(exc: Any) -> list[dict[str, str]]:
    """A pydantic ``ValidationError`` as ``[{"field": "events.3.played_ms", "reason": "..."}]``."""
    return describe_errors(exc.errors(include_url=False, include_context=False))


def describe_errors(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Pydantic's error entries (``loc``, ``msg``, ``type``) as fields and reasons a person can act on."""
    out = []
    for err in errors:
        field = ".".join(str(part) for part in err["loc"]) or "(body)"
        reason = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            reason = "is not a field of this contract"
        out.append({"field": field, "reason": reason})
    return out
