"""``encore import <format> <path...>``: outside data checked, converted and landed where the pipeline reads it.

The conversions are ``encore.imports``'s (pure, shared with the Glue job); this module reads the files, shows
progress, and lands the result through the same S3 client as everything else (the twin, or AWS):

1. **Quarantine** first: every rejected row with its reason as JSON lines, and ``summary.json`` (counts by reason,
   the first examples), under ``quarantine/import/<format>/<import id>/``.
2. **Catalog**: the lake's ``catalog/tracks.csv`` merged with what the import brings (``tracks.Catalog``), so an
   import adds to the catalog instead of replacing it; ``catalog/listeners.csv`` likewise by listener.
3. **Events** last, gzipped JSON lines in the raw zone in Firehose's layout, under the day they arrived (today by
   default, so the next curate run picks them up). Each source file's events are one object (or several of at
   most ``EVENTS_PER_OBJECT``) named after the file: S3 writes an object whole, so a file never half-lands,
   and an import that is run again, or resumed after a crash, replaces its objects; event ids are
   deterministic, so curation keeps each event once whatever was landed before.

Nothing is written before every file is converted, and nothing at all with ``dry_run``.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pycountry
from tqdm import tqdm

from encore.clients import get_client
from encore.config import EncoreConfig
from encore.imports import Rejections, lastfm, mpd, tracks
from encore.imports import events as event_rows
from encore.imports.tracks import Catalog
from encore_local.errors import UsageError
from encore_local.lake import raw_key

FORMATS = ("spotify-tracks", "mpd", "lastfm", "events")
EVENTS_PER_OBJECT = 500_000
LISTENER_COLUMNS = ["user_id", "display_name", "region", "signup_date"]
EVENT_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz", ".csv", ".parquet")
RELEASE_DATES = "catalog_extra.json"
# Level 1: three times faster than 5 on event JSON for about a fifth more bytes; an import is written once.
GZIP_LEVEL = 1
_JSON_LINE = json.JSONEncoder(separators=(",", ":")).encode  # an MPD folder's optional {track_uri: release date}


@dataclass
class ImportReport:
    format: str
    files: int = 0
    rows: int = 0
    events: int = 0
    tracks_in: int = 0
    last_event_ms: int = 0
    catalog_tracks: int = 0
    listeners: int = 0
    objects: int = 0
    bytes: int = 0
    seconds: float = 0.0
    landed: bool = False
    quarantine: str = ""
    rejections: Rejections = field(default_factory=Rejections)
    notes: list[str] = field(default_factory=list)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0

    def to_json(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "rejections"}
        return out | {"rows_per_second": self.rows_per_second, "rejected": len(self.rejections),
                      "rejected_by_reason": self.rejections.summary()}  # fmt: skip


@dataclass
class Converted:
    """What the files hold, in the contracts: events by the source they came from, catalog and listeners."""

    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    catalog: Catalog | None = None
    listeners: dict[str, dict[str, str]] = field(default_factory=dict)


class Progress:
    """A rows/s bar over the rows read, off when ``enabled`` is false."""

    def __init__(self, enabled: bool, fmt: str) -> None:
        self.bar = tqdm(desc=f"importing {fmt}", unit=" rows", unit_scale=True, disable=not enabled, leave=False)

    def __call__(self, n: int = 1) -> None:
        self.bar.update(n)

    def close(self) -> None:
        self.bar.close()


def expand(fmt: str, paths: Iterable[Path]) -> list[Path]:
    """The files to import: each path given, or a folder's files of the format (sorted)."""
    out: list[Path] = []
    for path in paths:
        if not path.exists():
            raise UsageError(f"{path}: no such file or folder")
        if path.is_file():
            out.append(path)
            continue
        if fmt == "mpd":
            found = mpd.slice_files(path)
        elif fmt == "events":
            found = sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(EVENT_SUFFIXES))
        else:
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in (".csv", ".tsv"))
        if not found:
            raise UsageError(f"{path}: no {fmt} files in this folder")
        out.extend(found)
    return out


# --- reading the lake's current catalog and listeners ---------------------------------------------------------


def _read_object(config: EncoreConfig, key: str) -> str | None:
    s3 = get_client("s3", config.region)
    try:
        return str(s3.get_object(Bucket=config.resources.lake_bucket, Key=key)["Body"].read().decode("utf-8"))
    except s3.exceptions.NoSuchKey:
        return None


def lake_catalog(config: EncoreConfig | None, rejections: Rejections) -> Catalog:
    catalog = Catalog()
    text = _read_object(config, f"{config.lake.catalog}tracks.csv") if config else None
    for n, row in enumerate(csv.DictReader(io.StringIO(text or "")), 2):
        catalog.add(row, f"lake catalog/tracks.csv:{n}", rejections)
    return catalog


def lake_listeners(config: EncoreConfig | None) -> dict[str, dict[str, str]]:
    text = _read_object(config, f"{config.lake.catalog}listeners.csv") if config else None
    return {row["user_id"]: row for row in csv.DictReader(io.StringIO(text or ""))}


# --- the formats ------------------------------------------------------------------------------------------------


def _lines(path: Path) -> Iterator[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", newline="") as fh:
        yield from fh


def _spotify_tracks(files: list[Path], catalog: Catalog, out: Converted, rej: Rejections, tick: Progress,
                    report: ImportReport) -> None:  # fmt: skip
    for path in files:
        with path.open(encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            problem = tracks.header_problem(reader.fieldnames or [])
            if problem:
                rej.add(str(path), f"file: {problem}", "")
                continue
            file_rej = Rejections()
            try:
                rows = list(reader)
            except csv.Error as exc:
                rej.add(str(path), f"file: not a readable CSV ({exc})", "")
                continue
            for n, row in enumerate(rows, 2):
                catalog.add(row, f"{path.name}:{n}", file_rej)
                tick()
            report.rows += len(rows)
            report.tracks_in += len(rows)
            rej.extend(file_rej)
    out.catalog = catalog


def _mpd(files: list[Path], catalog: Catalog, out: Converted, rej: Rejections, tick: Progress,
         report: ImportReport, region: str) -> None:  # fmt: skip
    folders = {p.parent for p in files}
    dates: dict[str, str] = {}
    for folder in folders:
        if (folder / RELEASE_DATES).exists():
            try:
                dates |= mpd.read_release_dates(folder / RELEASE_DATES)
            except ValueError as exc:
                raise UsageError(str(exc)) from None
    rows = mpd.CatalogRows()
    for path in files:
        try:
            playlists, file_rej = mpd.read_slice(path)
        except ValueError as exc:
            rej.add(str(path), "file: not a valid MPD slice (bad JSON or no playlists list)", str(exc))
            continue
        rej.extend(file_rej)
        events: list[dict[str, Any]] = []
        for playlist in playlists:
            rows.add(playlist)
            events.extend(mpd.playlist_events(playlist, region))
            tick(len(playlist["tracks"]))
            report.rows += len(playlist["tracks"])
        out.events[path.name] = events
    for row in rows.rows(dates):
        catalog.add(row, f"mpd track {row['track_id']}", rej)
        report.tracks_in += 1
    out.catalog = catalog


def _lastfm(files: list[Path], catalog: Catalog, out: Converted, rej: Rejections, tick: Progress,
            report: ImportReport, region: str, now_ms: int,
            country_code: Callable[[str], str | None]) -> None:  # fmt: skip
    history = lastfm.History(catalog, now_ms)
    profiles: dict[str, dict[str, str]] = {}
    for path in files:
        if "profile" in path.name:
            profiles |= lastfm.parse_profiles(_lines(path), country_code, path.name, rej)
            continue
        for n, line in enumerate(_lines(path), 1):
            if line.strip():
                history.add(line, f"{path.name}:{n}", rej)
                report.rows += 1
                tick()
    events = history.events(lambda user: (profiles.get(user) or {}).get("region") or region, rej)
    out.events["lastfm"] = events
    out.catalog = catalog
    report.tracks_in = len(history.new_tracks)
    report.notes.append(
        f"tracks matched to the catalog: {history.matched_by_id:,} plays by id, {history.matched_by_name:,} by "
        f"artist and title; {len(history.new_tracks):,} new tracks (durations estimated from the gaps between plays)"
    )
    for user in history.plays:
        profile = profiles.get(user, {})
        out.listeners[user] = {"user_id": user, "display_name": "", "region": profile.get("region") or region,
                               "signup_date": profile.get("signup_date", "")}  # fmt: skip


def _event_rows(path: Path) -> tuple[Iterator[dict[str, Any]], str | None]:
    """The rows of an events file as dicts, and a header problem (CSV and Parquet) if there is one."""
    name = path.name
    if name.endswith(".parquet"):
        table = pq.read_table(path)
        return iter(table.to_pylist()), event_rows.header_problem(table.column_names)
    if name.endswith(".csv"):
        with path.open(encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            header = list(reader.fieldnames or [])

        def csv_rows() -> Iterator[dict[str, Any]]:
            with path.open(encoding="utf-8", newline="") as fh:
                yield from csv.DictReader(fh)

        return csv_rows(), event_rows.header_problem(header)

    def json_lines() -> Iterator[dict[str, Any]]:
        for line in _lines(path):
            if line.strip():
                try:
                    value = json.loads(line)
                except json.JSONDecodeError:
                    value = {"_malformed": line.rstrip()}
                yield value if isinstance(value, dict) else {"_malformed": line.rstrip()}

    return json_lines(), None


def _events(files: list[Path], out: Converted, rej: Rejections, tick: Progress, report: ImportReport,
            now_ms: int) -> None:  # fmt: skip
    for path in files:
        try:
            rows, problem = _event_rows(path)
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            rej.add(str(path), f"file: not readable as {path.suffix.lstrip('.')} ({type(exc).__name__})", str(exc))
            continue
        if problem:
            rej.add(str(path), f"file: {problem}", "")
            continue
        events, ids = [], set()
        for n, row in enumerate(rows, 1):
            report.rows += 1
            tick()
            where = f"{path.name}:{n}"
            if "_malformed" in row:
                rej.add(where, "row: not a JSON object", row["_malformed"])
                continue
            event, reason = event_rows.event_from_row(row, now_ms)
            if event is None:
                rej.add(where, reason, json.dumps(row, default=str))
            elif event["event_id"] not in ids:  # the same event twice in one file is one event
                ids.add(event["event_id"])
                events.append(event)
        out.events[path.name] = events


# --- landing -----------------------------------------------------------------------------------------------------


def _stem(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")


def _csv(rows: Iterable[dict[str, Any]], columns: list[str]) -> bytes:
    text = io.StringIO()
    writer = csv.DictWriter(text, columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue().encode()


def land(config: EncoreConfig, fmt: str, converted: Converted, report: ImportReport, arrived: str | None,
         import_id: str) -> None:  # fmt: skip
    s3 = get_client("s3", config.region)
    bucket = config.resources.lake_bucket

    def put(key: str, body: bytes) -> None:
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        report.objects += 1
        report.bytes += len(body)

    quarantine = f"{config.lake.quarantine}import/{fmt}/{import_id}/"
    if report.rejections:
        lines = "".join(json.dumps(r.to_json(), ensure_ascii=False) + "\n" for r in report.rejections.rows)
        put(f"{quarantine}rejected.jsonl.gz", gzip.compress(lines.encode(), compresslevel=5))
        summary = {"format": fmt, "import_id": import_id, "rejected_by_reason": report.rejections.summary()}
        put(f"{quarantine}summary.json", json.dumps(summary, indent=2).encode())
        report.quarantine = f"s3://{bucket}/{quarantine}"
    if converted.catalog is not None:
        put(f"{config.lake.catalog}tracks.csv", _csv(converted.catalog.rows(), tracks.OUTPUT_COLUMNS))
    if converted.listeners:
        listeners = lake_listeners(config) | converted.listeners
        put(f"{config.lake.catalog}listeners.csv", _csv(listeners.values(), LISTENER_COLUMNS))
    for source, events in converted.events.items():
        by_day: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for event in events:
            by_day[arrived or datetime.fromtimestamp(event["timestamp"] / 1000, UTC).date().isoformat()].append(event)
        for day, day_events in sorted(by_day.items()):
            for part, start in enumerate(range(0, len(day_events), EVENTS_PER_OBJECT)):
                chunk = day_events[start : start + EVENTS_PER_OBJECT]
                body = "".join(_JSON_LINE(e) + "\n" for e in chunk).encode()
                name = "-".join(filter(None, ["encore-import", fmt, _stem(source), None if arrived else day,
                                              f"part{part}" if part else None]))  # fmt: skip
                put(raw_key(config, day, f"{name}.gz"), gzip.compress(body, compresslevel=GZIP_LEVEL))
    report.landed = True


def country_code(name: str) -> str | None:
    """A country's name as Last.fm profiles write it (``United Kingdom``, ``Korea, Republic of``) -> alpha-2."""
    try:
        return str(pycountry.countries.lookup(name.strip()).alpha_2)
    except LookupError:
        return None


def convert(
    config: EncoreConfig | None,
    fmt: str,
    paths: list[Path],
    *,
    progress: bool = False,
    region: str = mpd.DEFAULT_REGION,
    now_ms: int | None = None,
) -> tuple[Converted, ImportReport]:
    """Read and convert ``paths`` of ``fmt`` (matching against ``config``'s lake catalog when there is one);
    nothing is written."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r} (one of: {', '.join(FORMATS)})")
    started = time.perf_counter()
    files = expand(fmt, paths)
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    report = ImportReport(fmt, files=len(files))
    rej, out, tick = report.rejections, Converted(), Progress(progress, fmt)
    try:
        if fmt == "events":
            _events(files, out, rej, tick, report, now)
        else:
            catalog = lake_catalog(config, rej)
            if fmt == "spotify-tracks":
                _spotify_tracks(files, catalog, out, rej, tick, report)
            elif fmt == "mpd":
                _mpd(files, catalog, out, rej, tick, report, region)
            else:
                _lastfm(files, catalog, out, rej, tick, report, region, now, country_code)
    finally:
        tick.close()
    report.events = sum(len(e) for e in out.events.values())
    report.last_event_ms = max((e["timestamp"] for events in out.events.values() for e in events), default=0)
    report.catalog_tracks = len(out.catalog) if out.catalog is not None else 0
    report.listeners = len(out.listeners)
    report.seconds = time.perf_counter() - started
    return out, report


def run_import(
    config: EncoreConfig | None,
    fmt: str,
    paths: list[Path],
    *,
    dry_run: bool = False,
    progress: bool = False,
    region: str = mpd.DEFAULT_REGION,
    arrived: str | None = None,
    now_ms: int | None = None,
) -> ImportReport:
    """Convert ``paths`` of ``fmt`` and (unless ``dry_run``) land them in ``config``'s lake: the events under the
    day they ``arrived`` (``YYYY-MM-DD``; the command line's default is today), or with None under each event's
    own day, as if Firehose had delivered them as they happened. ``config`` None is a dry run with no lake to
    read (the catalog to match against starts empty)."""
    started = time.perf_counter()
    converted, report = convert(config, fmt, paths, progress=progress, region=region, now_ms=now_ms)
    if config is not None and not dry_run:
        land(config, fmt, converted, report, arrived, import_id(now_ms))
    report.seconds = time.perf_counter() - started
    return report


def import_id(now_ms: int | None = None) -> str:
    """The import's name in the quarantine: when it ran, to the second (UTC)."""
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    return datetime.fromtimestamp(now / 1000, UTC).strftime("%Y%m%dT%H%M%SZ")


def render(report: ImportReport) -> str:
    """The summary a person reads after an import."""
    verb = "landed" if report.landed else "checked (dry run: nothing written)"
    lines = [
        f"{report.format}: {report.files} file(s), {report.rows:,} rows in {report.seconds:.1f} s "
        f"({report.rows_per_second:,.0f} rows/s), {verb}",
        f"  events: {report.events:,}",
    ]
    if report.format != "events":
        lines.append(f"  catalog: {report.tracks_in:,} track rows in, {report.catalog_tracks:,} tracks in the catalog")
    if report.listeners:
        lines.append(f"  listeners: {report.listeners:,}")
    lines += [f"  {note}" for note in report.notes]
    if report.landed:
        lines.append(f"  {report.objects} object(s), {report.bytes / 1e6:.1f} MB written")
    rejected = report.rejections.summary()
    kept = f" (kept in {report.quarantine})" if report.quarantine else ""
    lines.append(f"  rejected: {len(report.rejections):,}{kept}")
    for reason, info in rejected.items():
        lines.append(f"    {info['count']:>8,}  {reason}  (e.g. {'; '.join(info['examples'])})")
    return "\n".join(lines)
