"""The command line: every bad argument gives one line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from encore_local.cli import main
from encore_local.demo import run
from encore_local.demo.report import render_closing

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["simulate", "--users", "-3"],
        ["simulate", "--users", "many"],
        ["simulate", "--tracks", "10"],
        ["simulate", "--days", "0"],
        ["simulate", "--seed", "-1"],
        ["simulate", "--start", "yesterday"],
        ["simulate", "--scale", "huge"],
        ["simulate", "--unknown"],
        ["twin"],
        ["twin", "sideways"],
        ["twin", "up", "--cache", "memcached"],
        ["twin", "up", "--stage", "qa"],
        ["demo", "--users", "0"],
        ["online-test", "start"],  # which model: --version or --derived
        ["online-test", "start", "--version", "v1", "--derived", "popularity"],
        ["online-test", "start", "--derived", "random"],
        ["batch"],
        ["batch", "run", "--size", "0"],
        ["batch", "run", "--filter", "nope"],  # not a named filter of the stage
    ],
)
def test_bad_arguments_give_one_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("encore")
    assert "Traceback" not in err


def test_online_test_without_a_twin(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    assert main(["online-test", "status", "--state-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith(f"encore online-test: no twin is running from {tmp_path}")


@pytest.mark.parametrize("cmd", ["down", "status", "env"])
def test_twin_commands_without_a_twin(cmd: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["twin", cmd, "--state-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"encore twin: no twin is running from {tmp_path}" or err.startswith("encore twin: no twin")


def test_unwritable_output_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code = main(["simulate", "--users", "5", "--tracks", "100", "--days", "1", "--quiet", "--out", str(blocker / "x")])
    err = capsys.readouterr().err
    assert code == 1
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_simulate_prints_a_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["simulate", "--users", "40", "--tracks", "200", "--days", "3", "--quiet", "--out", str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    for fragment in ("200 tracks", "40 (", "events", "top 1% of tracks", "cold start", "genre mix"):
        assert fragment in out
    assert len(list((tmp_path / "events").glob("*.jsonl"))) == 3


@pytest.mark.parametrize(("flag", "verbose"), [([], False), (["--verbose"], True)])
def test_demo_passes_verbose_on(flag: list[str], verbose: bool, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    asked: dict[str, Any] = {}

    def demo(params: Any, out: Path, **options: Any) -> run.DemoResult:
        asked.update(options)
        return run.DemoResult(scale="custom")

    monkeypatch.setattr(run, "run_demo", demo)
    assert main(["demo", "--users", "5", "--exit", "--out", str(tmp_path), *flag]) == 0
    assert asked["verbose"] is verbose and asked["keep_serving"] is False


def test_the_demo_ends_with_the_logs_and_what_to_open(tmp_path: Path) -> None:
    result = run.DemoResult(scale="small", api_url="http://127.0.0.1:8080", site_url="http://127.0.0.1:8081")
    report, logs = tmp_path / "report.html", tmp_path / "logs"
    serving = render_closing(result, report, logs, serving=True).splitlines()
    assert serving[0] == f"Logs of the twin's processes in {logs}/ (--verbose shows them here too):"
    assert [line.split()[0] for line in serving[1:4]] == ["glue.log", "lambda.log", "sagemaker.log"]
    assert "  web app     http://127.0.0.1:8081/" in serving
    assert "  Swagger UI  http://127.0.0.1:8080/v1/docs" in serving
    assert f"  report      {report.as_uri()} (report.json beside it)" in serving
    stopped = render_closing(result, report, logs, serving=False)
    assert "http://" not in stopped  # the servers stopped with the demo: no address that no longer answers
    assert report.as_uri() in stopped and "without --exit" in stopped
