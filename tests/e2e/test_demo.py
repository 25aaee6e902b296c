"""``encore demo`` at small scale: the twin, the simulated service, the whole pipeline, recommendations served."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from encore_local.cli import main

pytestmark = pytest.mark.e2e


def test_demo_runs_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--scale", "small", "--quiet", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    summary = json.loads((tmp_path / "sim" / "summary.json").read_text())
    assert summary["events"] > 10_000
    assert f"{summary['events']:,} events" in out
    assert "raw event objects" in out and "genre mix" in out and "total" in out
    assert "twin: AWS APIs at http://127.0.0.1:" in out
    for step in ("load_catalog", "curate_events", "build_features", "build_charts", "train", "gate", "deploy",
                 "load_vectors"):  # fmt: skip
        assert f"pipeline: {step}" in out
    assert "beats popularity" in out  # the gate promoted the model ...
    assert out.count("    ") > 15 and "Sample home recommendations:" in out  # ... and the API served from it
