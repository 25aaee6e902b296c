"""Charts and trending for the read API and the serving fallback: which region, which period, and each row
joined with the track's name and artist."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Protocol

from encore.catalog import Catalog
from encore.errors import BadRequest
from encore.models import Chart, ChartEntry, ChartRow
from encore.regions import ISO_3166_ALPHA2

GLOBAL = "GLOBAL"
TRENDING_WINDOW = "7d"
Window = Literal["hour", "day"]


class ChartReader(Protocol):
    def chart(self, kind: str, region: str, window: str, period: str, limit: int) -> list[ChartRow]: ...


def region_code(code: str) -> str:
    """An ISO 3166-1 alpha-2 code (any case) or GLOBAL, upper-cased; else ``BadRequest``."""
    code = code.upper()
    if code != GLOBAL and code not in ISO_3166_ALPHA2:
        raise BadRequest(f"region '{code}' is not an ISO 3166-1 alpha-2 code or GLOBAL")
    return code


def period_of(window: Window, at: datetime | None) -> str:
    """The chart period holding ``at`` (a UTC time): its hour or its day; "latest" for the newest."""
    if at is None:
        return "latest"
    return at.strftime("%Y-%m-%dT%H" if window == "hour" else "%Y-%m-%d")


def trending_rows(charts: ChartReader, region: str, limit: int) -> tuple[str, list[ChartRow]]:
    """The region's 7-day trending, else the world's (a region with little traffic has no chart yet), and which
    of the two it is."""
    for where in dict.fromkeys([region, GLOBAL]):
        rows = charts.chart("trending", where, TRENDING_WINDOW, "latest", limit)
        if rows:
            return where, rows
    return GLOBAL, []


def _chart(catalog: Catalog, region: str, window: str, rows: list[ChartRow]) -> Chart:
    meta = catalog.metadata([r.track_id for r in rows], [])
    items = [
        ChartEntry(
            rank=r.rank,
            track_id=r.track_id,
            plays=r.plays,
            name=meta[r.track_id].name if r.track_id in meta else None,
            artist_name=meta[r.track_id].artist_name if r.track_id in meta else None,
        )
        for r in rows
    ]
    return Chart(region=region, window=window, period=rows[0].period if rows else None, items=items)


def top(charts: ChartReader, catalog: Catalog, region: str, window: Window, at: datetime | None, limit: int) -> Chart:
    """``GET /v1/charts/{region}``: the most played tracks of the region in the hour or day holding ``at``."""
    code = region_code(region)
    return _chart(catalog, code, window, charts.chart("top", code, window, period_of(window, at), limit))


def trending(charts: ChartReader, catalog: Catalog, region: str, limit: int) -> Chart:
    """``GET /v1/trending``: the region's 7-day trending, else the world's."""
    where, rows = trending_rows(charts, region_code(region), limit)
    return _chart(catalog, where, TRENDING_WINDOW, rows)
