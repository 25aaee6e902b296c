"""What recording an impression adds to a recommendation answer: building the impression and writing its line
to standard output (a pipe, as in Lambda), beside serializing the answer itself, which every request pays
anyway, measured in the same run on answers of 20 and 100 tracks. No AWS call is made for an impression
(``encore.impressions``): this is its whole cost on the request path.

    python bench/bench_impressions.py [--answers 20000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from pathlib import Path

from _common import save

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "layers" / "shared"))

from encore.impressions import impression_of, record  # noqa: E402
from encore.models import RecommendationResponse  # noqa: E402


def answer(tracks: int) -> RecommendationResponse:
    items = [{"track_id": f"track-{i:06d}", "score": 1.0 / (i + 1), "source": "model", "cf": 0.5, "content": 0.3,
              "name": f"Song {i}", "artist_name": f"Artist {i % 50}", "image_url": None}
             for i in range(tracks)]  # fmt: skip
    return RecommendationResponse.model_validate(
        {"recommendation_id": str(uuid.uuid4()), "surface": "home", "model_version": "encore-v1", "items": items}
    )


def per_answer_us(step: object, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        step()  # type: ignore[operator]
    return (time.perf_counter() - started) / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--answers", type=int, default=20_000)
    args = ap.parse_args()
    read, write = os.pipe()
    sink = os.fdopen(write, "w", buffering=1)
    drain = os.fdopen(read, "rb", buffering=0)
    figures = {}
    print(f"{'tracks':>7} {'answer JSON (us)':>17} {'impression (us)':>16} {'share':>7}")
    for tracks in (20, 100):
        response = answer(tracks)

        def impression(response: RecommendationResponse = response) -> None:
            record(impression_of(response, "listener-1", None, False, 1_790_000_000_000), sink)
            drain.read(65536)  # keep the pipe from filling, as Lambda's log agent reads it

        baseline = per_answer_us(response.model_dump_json, args.answers)
        cost = per_answer_us(impression, args.answers)
        figures[f"tracks_{tracks}"] = {"answer_json_us": round(baseline, 2), "impression_us": round(cost, 2)}
        print(f"{tracks:>7} {baseline:>17.1f} {cost:>16.1f} {cost / baseline:>6.2f}x")
    path = save("impressions", figures)
    print(f"saved {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
