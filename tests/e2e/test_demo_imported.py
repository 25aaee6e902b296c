"""``encore demo --data mpd:<dir>``: playlists in MPD format imported into the twin, the nightly state machine on
them, a promoted model whose report shows playlist-continuation quality, and its home pages through the API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from encore.pipeline import NIGHTLY
from encore_local.cli import main
from encore_local.playlists import PlaylistParams, generate_mpd

pytestmark = pytest.mark.e2e
PARAMS = PlaylistParams(playlists=1500, tracks=1500, days=30, themes=12, seed=11)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    mpd = tmp_path_factory.mktemp("mpd")
    generate_mpd(PARAMS, mpd)
    (mpd / "mpd.slice.1000-1999.json").write_text((mpd / "mpd.slice.1000-1999.json").read_text()[:-500])  # cut
    out = tmp_path_factory.mktemp("demo")
    code = main(["demo", "--data", f"mpd:{mpd}", "--quiet", "--exit", "--port", "0", "--out", str(out)])
    return {"code": code, "report": json.loads((out / "report.json").read_text()), "mpd": mpd}


def test_imported_playlists_train_a_promoted_model_with_continuation_quality(demo: dict[str, Any]) -> None:
    report = demo["report"]
    assert demo["code"] == 0 and all(report["checks"].values()), report["checks"]
    states = [s["state"] for s in report["executions"]["nightly"]["states"]]
    assert states[:8] == [step.name for step in NIGHTLY[:8]]  # the nightly steps up to the gate, in order
    model = report["model"]
    assert model["promoted"]
    continuation = model["continuation"]
    assert set(continuation) == {"hybrid", "als", "popularity"}
    for metric in ("r_precision", "ndcg@500"):
        assert continuation["hybrid"][metric] > continuation["popularity"][metric] > 0
    assert model["home"]["hybrid"]["ndcg@10"] > model["home"]["popularity"]["ndcg@10"]


def test_the_truncated_slice_is_reported_and_nothing_of_it_trained(demo: dict[str, Any]) -> None:
    volumes = demo["report"]["volumes"]
    cut = str(Path(demo["mpd"]) / "mpd.slice.1000-1999.json")
    assert volumes["rejected"] == 1
    assert list(volumes["rejected_by_reason"].values()) == [{"count": 1, "examples": [cut]}]
    kept = json.loads((Path(demo["mpd"]) / "mpd.slice.0-999.json").read_text())["playlists"]
    assert volumes["events"] == sum(len(p["tracks"]) for p in kept)
    assert all(s["user_id"].startswith("mpd-") and int(s["user_id"][4:]) < 1000 for s in demo["report"]["samples"])
