"""``encore demo`` at small scale: the twin starts, the service is simulated and imported, the report prints."""

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
