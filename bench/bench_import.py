"""Import throughput: rows per second of ``encore import`` for each format, beside a bare read of the same files.

Each format's files are made here: MPD slices by the playlist generator (10,000 playlists), a tracks CSV and a
day of events (JSON lines and Parquet) by the simulator, and a Last.fm TSV written from those events (artist and
title, no ids: every play is matched by name). The import runs whole (read, check, convert, land) into an
in-memory S3 (moto), in the order a team would: the catalog first, so Last.fm plays match it. The baseline, timed
in the same run, is the bare read a script would start from: ``json.load`` of each slice, ``csv.DictReader`` over
the CSV and TSV files, ``json.loads`` of each line, ``pyarrow.parquet.read_table``. Target: the MPD conversion of
10,000 playlists in under 20 s.

    python bench/bench_import.py [--playlists 10000]
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
from _common import save
from moto import mock_aws

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from encore.clients import get_client, reset_clients  # noqa: E402
from encore.config import EncoreConfig  # noqa: E402
from encore_local.importer import run_import  # noqa: E402
from encore_local.playlists import PlaylistParams, generate_mpd  # noqa: E402
from encore_local.simulator import SimulationParams, simulate  # noqa: E402

MPD_TARGET_SECONDS = 20.0


def make_inputs(root: Path, playlists: int) -> dict[str, list[Path]]:
    generate_mpd(PlaylistParams(playlists=playlists, tracks=20_000, seed=3), root / "mpd")
    sim = root / "sim"
    simulate(SimulationParams(users=4_000, tracks=40_000, days=4, seed=3), sim, progress=False)
    events = sorted((sim / "events").glob("*.jsonl"))
    frame = pd.concat(
        [pd.read_json(p, lines=True, convert_dates=False, dtype=False) for p in events], ignore_index=True
    )
    frame.to_parquet(root / "events.parquet")
    tracks = pd.read_csv(
        sim / "catalog" / "tracks.csv", usecols=["track_id", "artists", "track_name"], keep_default_na=False
    )
    named = frame[["user_id", "timestamp", "track_id"]].merge(tracks, on="track_id")
    with (root / "plays.tsv").open("w", encoding="utf-8") as fh:
        for user, ts, artist, title in zip(named["user_id"], named["timestamp"], named["artists"],
                                           named["track_name"], strict=True):  # fmt: skip
            start = datetime.fromtimestamp(ts / 1000 - 200, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            fh.write(f"{user}\t{start}\t\t{artist}\t\t{title}\n")
    return {
        "spotify-tracks": [sim / "catalog" / "tracks.csv"],
        "mpd": [root / "mpd"],
        "lastfm": [root / "plays.tsv"],
        "events (JSON lines)": events,
        "events (Parquet)": [root / "events.parquet"],
    }


def bare_read(fmt: str, paths: list[Path]) -> int:
    """What a script reads before it does anything: rows."""
    rows = 0
    for path in paths:
        if fmt == "mpd":
            for piece in sorted(path.glob("mpd.slice.*.json")):
                rows += sum(len(p["tracks"]) for p in json.loads(piece.read_text())["playlists"])
        elif fmt == "events (Parquet)":
            rows += pq.read_table(path).num_rows
        elif fmt == "events (JSON lines)":
            opener: Callable[..., Any] = gzip.open if path.suffix == ".gz" else open
            with opener(path, "rt", encoding="utf-8") as fh:
                rows += sum(1 for line in fh if json.loads(line))
        else:
            with path.open(encoding="utf-8", newline="") as fh:
                rows += sum(1 for _ in csv.DictReader(fh, delimiter="\t" if fmt == "lastfm" else ","))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--playlists", type=int, default=10_000)
    args = ap.parse_args()
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp, mock_aws():
        reset_clients()
        inputs = make_inputs(Path(tmp), args.playlists)
        config = EncoreConfig.for_stage("local")
        get_client("s3", config.region).create_bucket(Bucket=config.resources.lake_bucket)
        for name, paths in inputs.items():
            fmt = name.split(" ")[0]
            started = time.perf_counter()
            read_rows = bare_read(name, paths)
            read_s = time.perf_counter() - started
            report = run_import(config, fmt, paths, arrived="2026-10-01")
            results[name] = {"rows": report.rows, "bare_read_rows": read_rows, "import_seconds": report.seconds,
                             "bare_read_seconds": read_s, "rows_per_second": report.rows / report.seconds,
                             "bare_read_rows_per_second": read_rows / read_s, "events": report.events,
                             "rejected": len(report.rejections), "notes": report.notes}  # fmt: skip
        reset_clients()
    mpd_seconds = results["mpd"]["import_seconds"]
    figures = {"playlists": args.playlists, "formats": results, "mpd_target_seconds": MPD_TARGET_SECONDS,
               "meets_target": mpd_seconds < MPD_TARGET_SECONDS}  # fmt: skip
    path = save("import", figures)
    print(f"import throughput (landing into an in-memory S3; MPD: {args.playlists:,} playlists)")
    print(f"  {'format':22} {'rows':>10} {'encore import':>14} {'rows/s':>10} {'bare read':>10} {'rows/s':>11} "
          f"{'ratio':>6}")  # fmt: skip
    for name, r in results.items():
        print(f"  {name:22} {r['rows']:10,} {r['import_seconds']:12.2f} s {r['rows_per_second']:10,.0f} "
              f"{r['bare_read_seconds']:8.2f} s {r['bare_read_rows_per_second']:11,.0f} "
              f"{r['import_seconds'] / r['bare_read_seconds']:5.1f}x")  # fmt: skip
        for note in r["notes"]:
            print(f"  {'':22} {note}")
    verdict = "met" if figures["meets_target"] else "NOT met"
    target = f"target < {MPD_TARGET_SECONDS:.0f} s"
    print(f"  MPD conversion of {args.playlists:,} playlists: {mpd_seconds:.1f} s ({target}): {verdict}")
    print(f"  figures written to {path}")


if __name__ == "__main__":
    main()
