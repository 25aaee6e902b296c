"""What an app asks of a page beyond the surface: a catalog filter (named in configuration, or per request, or
both), tracks to leave out, and a named promotion. Resolved once per request into ``Controls``, which the
recommendation path hands to the model, puts in the result cache's key and states in the answer.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from datetime import date

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from encore.config import EncoreConfig
from encore.errors import BadRequest
from encore.models import MAX_LISTED, AppliedFilter, CatalogFilter, Identifier, Promotion, describe_errors


class ControlsQuery(BaseModel):
    """The query parameters of the recommendation routes that choose what may be recommended."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    filter: str | None = Field(None, max_length=64, description="a named filter of the stage's configuration")
    genres: str | None = Field(None, max_length=4000, description="only these genres: comma-separated, any of them")
    exclude_genres: str | None = Field(None, max_length=4000, description="no track of these genres, comma-separated")
    explicit: bool | None = Field(None, description="false leaves explicit tracks out")
    released_within_days: int | None = Field(None, ge=0, le=36_500, description="released in the last N days")
    released_before: date | None = Field(None, description="released before this day (YYYY-MM-DD)")
    exclude_tracks: str | None = Field(None, max_length=13_000, description="track ids to leave out, comma-separated")
    exclude_artists: str | None = Field(None, max_length=13_000, description="artist ids to leave out, comma-separated")
    promotion: str | None = Field(None, max_length=64, description="a named promotion: its tracks get their share")


TRACK_IDS = TypeAdapter(list[Identifier])


def _listed(value: str | None, name: str) -> list[str] | None:
    if value is None:
        return None
    items = list(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))
    if not items:
        raise BadRequest(f"{name} names nothing: give comma-separated values")
    if len(items) > MAX_LISTED:
        raise BadRequest(f"{name} names {len(items)} values; at most {MAX_LISTED}")
    return items


@dataclass(frozen=True)
class Controls:
    filter: CatalogFilter | None = None
    filter_name: str | None = None
    exclude_tracks: tuple[str, ...] = ()
    promotion_name: str | None = None
    promotion: Promotion | None = None

    def applied(self) -> AppliedFilter | None:
        """What the answer says held (None: nothing did)."""
        if self.filter is None and not self.exclude_tracks:
            return None
        spec = self.filter.spec() if self.filter else {}
        return AppliedFilter(name=self.filter_name, spec=spec, exclude_tracks=list(self.exclude_tracks))

    def promoted_places(self, limit: int) -> int:
        """How many of a page of ``limit`` the promotion takes (at least one when it has a share)."""
        return max(1, math.floor(limit * self.promotion.share + 0.5)) if self.promotion else 0

    @property
    def key(self) -> str:
        """A short digest of everything that changes the answer, for the result cache's key."""
        if self == NO_CONTROLS:
            return "-"
        parts = [self.filter_name, self.filter.spec() if self.filter else None, sorted(self.exclude_tracks),
                 self.promotion_name, self.promotion.model_dump(mode="json") if self.promotion else None]  # fmt: skip
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


NO_CONTROLS = Controls()


def resolve(config: EncoreConfig, query: ControlsQuery, *, promotions: bool = True) -> Controls:
    """The controls a request asks for; a ``BadRequest`` naming the parameter when one cannot be honoured."""
    serving = config.serving
    named = None
    if query.filter is not None:
        named = serving.filters.get(query.filter)
        if named is None:
            known = ", ".join(sorted(serving.filters)) or "none are configured"
            raise BadRequest(f"filter '{query.filter}' is not a named filter of this stage ({known})")
    try:
        asked = CatalogFilter(
            genres_in=_listed(query.genres, "genres"),
            genres_not_in=_listed(query.exclude_genres, "exclude_genres"),
            explicit=query.explicit,
            released_within_days=query.released_within_days,
            released_before=query.released_before,
            exclude_artists=_listed(query.exclude_artists, "exclude_artists"),
        )
    except ValidationError as exc:
        first = describe_errors(exc.errors(include_url=False, include_context=False))[0]
        raise BadRequest(f"{first['field'].split('.')[0]}: {first['reason']}") from None
    combined = asked if named is None else named
    if named is not None and asked.spec():
        try:
            combined = named.joined(asked)
        except ValueError as exc:
            raise BadRequest(f"filter '{query.filter}' and the request {exc}: drop one of them") from None
    promotion = None
    if query.promotion is not None:
        if not promotions:
            raise BadRequest("promotion does not apply here: this route orders the tracks it is given")
        promotion = serving.promotions.get(query.promotion)
        if promotion is None:
            known = ", ".join(sorted(serving.promotions)) or "none are configured"
            raise BadRequest(f"promotion '{query.promotion}' is not a named promotion of this stage ({known})")
    try:
        exclude_tracks = TRACK_IDS.validate_python(_listed(query.exclude_tracks, "exclude_tracks") or [])
    except ValidationError as exc:
        bad = exc.errors(include_url=False, include_context=False)[0]
        raise BadRequest(f"exclude_tracks: {bad['input']!r} is not a track id ({bad['msg']})") from None
    return Controls(
        filter=combined if combined.spec() else None,
        filter_name=query.filter,
        exclude_tracks=tuple(exclude_tracks),
        promotion_name=query.promotion,
        promotion=promotion,
    )
