"""The ``encore`` command line: simulate, twin, job, batch, online-test, api, import, demo. Bad arguments: one
line on stderr, exit 2."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from pydantic import ValidationError

from encore.config import EncoreConfig, runtime_values
from encore.pipeline import GLUE_JOBS
from encore_local.errors import UsageError
from encore_local.online_test import KINDS
from encore_local.simulator.summary import render_summary

if TYPE_CHECKING:
    from encore_local.simulator import SimulationParams

PROG = "encore"


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line (``encore simulate: --users: ...``) instead of usage text."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"'{text}' must be 1 or more")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"'{text}' must be 0 or more")
    return value


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a date like 2026-09-01") from None


def _add_scale_args(p: argparse.ArgumentParser) -> None:
    from encore_local.simulator import SCALES

    p.add_argument("--scale", choices=sorted(SCALES), default="default", help="preset sizes (default: %(default)s)")
    p.add_argument("--users", type=_positive_int, help="listeners (overrides --scale)")
    p.add_argument("--tracks", type=_positive_int, help="tracks in the catalog (overrides --scale)")
    p.add_argument("--days", type=_positive_int, help="days of listening (overrides --scale)")
    p.add_argument("--seed", type=_non_negative_int, default=7, help="random seed (default: %(default)s)")
    p.add_argument("--start", type=_iso_date, help="first simulated day (default: 2026-09-01)")


def _params(args: argparse.Namespace) -> SimulationParams:
    from encore_local.simulator import SCALES, SimulationParams

    sizes = {key: getattr(args, key) or default for key, default in SCALES[args.scale].items()}
    params = SimulationParams(seed=args.seed, users=sizes["users"], tracks=sizes["tracks"], days=sizes["days"])
    return dataclasses.replace(params, start=args.start) if args.start else params


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Encore: serverless music recommendations, run on one machine.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sim = sub.add_parser("simulate", help="generate a catalog, listeners and listening events")
    _add_scale_args(sim)
    sim.add_argument("--out", type=Path, default=Path("data/sim"), help="output folder (default: %(default)s)")
    sim.add_argument("--gzip", action="store_true", help="gzip the event files")
    sim.add_argument("--quiet", action="store_true", help="no progress bar")
    sim.add_argument("--json", action="store_true", help="print the summary as JSON")

    twin = sub.add_parser("twin", help="the offline twin's services (moto, redis) in the background")
    twin_sub = twin.add_subparsers(dest="twin_command", required=True, parser_class=_Parser)
    for name, text in (
        ("up", "start the services and print the environment to export"),
        ("down", "stop the services"),
        ("status", "say whether the services run, and where"),
        ("env", 'print export lines for the running twin (eval "$(encore twin env)")'),
        ("serve", "run the services in the foreground until Ctrl-C"),
    ):
        p = twin_sub.add_parser(name, help=text)
        p.add_argument("--state-dir", type=Path, default=Path(".encore"), help="where the twin keeps its state")
        if name in ("up", "serve"):
            p.add_argument("--stage", choices=["local", "dev", "prod"], default="local")
            p.add_argument("--cache", choices=["redis-server", "fakeredis"], help="default: redis-server if installed")

    job = sub.add_parser(
        "job", help="start one of the stack's Glue jobs (on the twin: its script asset on local Spark)"
    )
    job_sub = job.add_subparsers(dest="job_command", required=True, parser_class=_Parser)
    run = job_sub.add_parser("run", help="start one job run and wait for it (StartJobRun, then GetJobRun)")
    run.add_argument("name", help=" | ".join(step.name for step in GLUE_JOBS))
    run.add_argument("--run-time", help="the job's notion of now (ISO time); default: now")
    run.add_argument("--lookback-days", type=_non_negative_int, help="curate_events: raw days to read (0: all)")
    run.add_argument("--stage", choices=["local", "dev", "prod"], default="local")
    run.add_argument("--state-dir", type=Path, default=Path(".encore"), help="the running twin's state folder")

    batch = sub.add_parser("batch", help="recommendations computed ahead for e-mail and push (batch_recommend)")
    batch_sub = batch.add_subparsers(dest="batch_command", required=True, parser_class=_Parser)
    ahead = batch_sub.add_parser("run", help="each active listener's top N from the champion, into batch/dt=<date>/")
    ahead.add_argument("--filter", help="a named filter of the stage (serving.filters) the lists hold to")
    ahead.add_argument("--size", type=_positive_int, help="tracks per listener (default: the stage's batch.size)")
    ahead.add_argument("--run-time", help="the job's notion of now (ISO time); default: now")
    ahead.add_argument("--stage", choices=["local", "dev", "prod"], default="local")
    ahead.add_argument("--state-dir", type=Path, default=Path(".encore"), help="the running twin's state folder")

    test = sub.add_parser(
        "online-test", help="champion/challenger on the endpoint: start one, see it, have it judged (docs/online.md)"
    )
    test_sub = test.add_subparsers(dest="test_command", required=True, parser_class=_Parser)
    start = test_sub.add_parser("start", help="put a model on the endpoint as the challenger (the deploy function)")
    which = start.add_mutually_exclusive_group(required=True)
    which.add_argument("--version", help="a model the gate decided on (models/decisions/<version>.json)")
    which.add_argument("--derived", choices=KINDS, help="a copy of the champion: popularity, or shuffled track ids")
    test_sub.add_parser("status", help="the champion, the running test and the challenger's judgments")
    test_sub.add_parser("judge", help="ask the judge function for its decision now")
    for p in (start, *(test_sub.choices[c] for c in ("status", "judge"))):
        p.add_argument("--stage", choices=["local", "dev", "prod"], default="local")
        p.add_argument("--state-dir", type=Path, default=Path(".encore"), help="the running twin's state folder")

    api = sub.add_parser("api", help="the twin's API Gateway: the Lambda handlers behind a local HTTP server")
    api_sub = api.add_subparsers(dest="api_command", required=True, parser_class=_Parser)
    serve = api_sub.add_parser("serve", help="serve the API until Ctrl-C (needs a running twin: encore twin up)")
    serve.add_argument("--port", type=_non_negative_int, default=8080, help="loopback port (default: %(default)s)")
    serve.add_argument("--stage", choices=["local", "dev", "prod"], default="local")
    serve.add_argument(
        "--workers",
        type=_positive_int,
        default=2,
        help="Lambda instances, each in a process of its own if more than one (default: %(default)s)",
    )
    serve.add_argument("--state-dir", type=Path, default=Path(".encore"), help="the running twin's state folder")

    imp = sub.add_parser(
        "import", help="check, convert and land a catalog or listening history (into the twin, or AWS with --aws)"
    )
    imp.add_argument("format", choices=["spotify-tracks", "mpd", "lastfm", "events"], help="the files' format")
    imp.add_argument("paths", nargs="+", type=Path, help="files, or folders of them")
    imp.add_argument("--stage", choices=["local", "dev", "prod"], default="local")
    imp.add_argument("--dry-run", action="store_true", help="check and convert, report, write nothing")
    imp.add_argument("--aws", action="store_true", help="land in the deployed stack's bucket (boto3's credentials)")
    imp.add_argument("--region", dest="listener_region", default="US",
                     help="listeners' region where the data has none (default: %(default)s)")  # fmt: skip
    imp.add_argument("--arrived", type=_iso_date, help="the raw zone's arrival day (default: today)")
    imp.add_argument("--quiet", action="store_true", help="no progress bar")
    imp.add_argument("--json", action="store_true", help="print the report as JSON")
    imp.add_argument("--state-dir", type=Path, default=Path(".encore"), help="the running twin's state folder")

    demo = sub.add_parser("demo", help="run what Encore has end to end on one machine and report")
    _add_scale_args(demo)
    demo.add_argument("--out", type=Path, default=Path("data/demo"), help="output folder (default: %(default)s)")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.add_argument(
        "--verbose",
        action="store_true",
        help="show the twin's processes' output here too (Spark at INFO, the functions' log lines and EMF metrics); "
        "it always goes to <out>/logs/",
    )
    demo.add_argument("--port", type=_non_negative_int, default=8080, help="the API's loopback port (0: any free)")
    demo.add_argument("--exit", action="store_true", help="stop after the report instead of serving until Ctrl-C")
    demo.add_argument(
        "--data", metavar="FORMAT:PATH[,PATH]", help="run on imported data, not the simulator's (e.g. mpd:data/mpd)"
    )
    return parser


def _simulate(args: argparse.Namespace) -> None:
    from encore_local.simulator import simulate

    params = _params(args)
    started = time.perf_counter()
    summary = simulate(params, args.out, compress=args.gzip, progress=not args.quiet)
    if args.json:
        print(json.dumps(summary.to_json(), indent=2))
    else:
        print(render_summary(summary, time.perf_counter() - started))


def _twin(args: argparse.Namespace) -> None:
    from encore_local.twin import daemon

    cmd = args.twin_command
    if cmd == "serve":
        daemon.serve(EncoreConfig.for_stage(args.stage), args.state_dir, args.cache)
    elif cmd == "up":
        state = daemon.up(args.state_dir, args.stage, args.cache)
        print(
            f"twin up (pid {state['pid']}): AWS APIs at {state['aws_endpoint']}, cache ({state['cache_kind']}) "
            f"at {state['cache_url']}"
        )
        print("# to use it from a shell:")
        print(daemon.export_lines(state["env"]))
    elif cmd == "down":
        print(f"twin down (pid {daemon.down(args.state_dir)} stopped)")
    else:
        running = daemon.read_state(args.state_dir)
        if running is None:
            raise UsageError(f"no twin is running from {args.state_dir} (encore twin up first)")
        if cmd == "status":
            print(f"twin running (pid {running['pid']}): {running['aws_endpoint']} and {running['cache_url']}")
        else:
            print(daemon.export_lines(running["env"]))


def _use_twin(state_dir: Path, stage: str) -> EncoreConfig:
    """Point this process at the twin running from ``state_dir`` (or at whatever AWS_ENDPOINT_URL names), and
    return the configuration of the stack deployed there."""
    import os

    from encore_local.twin import daemon

    running = daemon.read_state(state_dir)
    if running is not None:
        os.environ.update(running["env"])
        return daemon.deployed_config(running, stage)
    if "AWS_ENDPOINT_URL" not in os.environ:
        raise UsageError(f"no twin is running from {state_dir} (encore twin up) and AWS_ENDPOINT_URL is not set")
    return EncoreConfig.for_stage(stage)  # type: ignore[arg-type]  # argparse restricts it to the stages


def _api(args: argparse.Namespace) -> None:
    from encore.clients import get_client
    from encore_local.twin import daemon
    from encore_local.twin.apigateway import DEFAULT_API_KEY
    from encore_local.twin.site import TwinSite

    _use_twin(args.state_dir, args.stage)
    running = daemon.read_state(args.state_dir)
    if running is None:
        raise UsageError(f"no twin is running from {args.state_dir} (encore twin up first)")
    server = daemon.api(running, args.state_dir, port=args.port, workers=args.workers)
    url = server.start()
    site = TwinSite(server, get_client)  # this process now points at the running twin
    site.start()
    print(f"API at {url}/v1 (key: x-api-key: {DEFAULT_API_KEY}); OpenAPI at {url}/v1/openapi.json")
    print(f"Web app at {site.url}/ (its /v1 is the API, the key added as CloudFront adds it); Ctrl-C stops")
    try:
        server.thread.join()
    finally:
        site.stop()
        server.stop()


def _job(args: argparse.Namespace) -> None:
    from encore_local.jobs import JobFailed, glue_job_name, run_job

    glue_job_name(EncoreConfig.for_stage(args.stage), args.name)  # an unknown name is a usage error at once
    config = _use_twin(args.state_dir, args.stage)
    try:
        result = run_job(args.name, config, run_time=args.run_time, lookback_days=args.lookback_days)
    except JobFailed as failed:
        raise UsageError(str(failed)) from None
    print(f"{result.name} ({result.run_id}): {result.state} in {result.seconds:.1f} s: {result.result}")


def _batch(args: argparse.Namespace) -> None:
    from encore_local.jobs import JobFailed, run_job

    def asking(config: EncoreConfig) -> EncoreConfig:
        batch = config.batch.model_dump() | {k: v for k, v in (("filter", args.filter), ("size", args.size)) if v}
        try:
            return EncoreConfig.model_validate({**config.model_dump(), "batch": batch})
        except ValidationError as exc:
            raise UsageError(exc.errors()[0]["msg"].removeprefix("Value error, ")) from None

    asking(EncoreConfig.for_stage(args.stage))  # a filter the stage lacks is a usage error before the twin is asked
    config = _use_twin(args.state_dir, args.stage)
    asked = asking(config)
    extra = {"encore_config": json.dumps(runtime_values(asked))}
    try:
        result = run_job("batch_recommend", config, run_time=args.run_time, extra=extra)
    except JobFailed as failed:
        raise UsageError(str(failed)) from None
    where = f"s3://{config.resources.lake_bucket}/{config.lake.batch}"
    print(f"batch_recommend ({result.run_id}): {result.state} in {result.seconds:.1f} s: {result.result}")
    print(f"  lists in {where} (table {config.resources.glue_database}.batch_recommendations, by dt)")


def _online_test(args: argparse.Namespace) -> None:
    from encore.promotion import ModelRegistry
    from encore_local import online_test

    config = _use_twin(args.state_dir, args.stage)
    registry = ModelRegistry(config)
    if args.test_command == "start":
        version = args.version or f"{args.derived}-{datetime.now(UTC):%Y%m%d%H%M%S}"
        decision = (
            online_test.recorded_challenger(config, version)
            if args.version
            else online_test.derived_challenger(config, args.derived, version)
        )
        result = online_test.invoke(config, online_test.DEPLOY, decision)
        print(f"{decision['version']} is on the endpoint as the {result['role']} ({result['endpoint_config']})")
    elif args.test_command == "judge":
        judged = online_test.invoke(config, online_test.JUDGE, {})
        print(f"{judged['action']}: {judged['reason']}")
    serving = registry.serving()
    print(online_test.describe(serving, registry))


def _import(args: argparse.Namespace) -> None:
    from datetime import UTC, datetime

    from encore.regions import ISO_3166_ALPHA2
    from encore_local.importer import render, run_import

    if args.listener_region not in ISO_3166_ALPHA2:
        raise UsageError(f"--region: '{args.listener_region}' is not an ISO 3166-1 alpha-2 country code (e.g. US)")
    if args.aws:
        config: EncoreConfig | None = EncoreConfig.for_stage(args.stage)
    elif args.dry_run and daemon_state(args.state_dir) is None:
        config = None  # nothing to write, and no lake to match against
    else:
        config = _use_twin(args.state_dir, args.stage)
    arrived = (args.arrived or datetime.now(UTC).date()).isoformat()
    report = run_import(config, args.format, args.paths, dry_run=args.dry_run, progress=not args.quiet,
                        region=args.listener_region, arrived=arrived)  # fmt: skip
    print(json.dumps(report.to_json(), indent=2) if args.json else render(report))


def daemon_state(state_dir: Path) -> dict[str, object] | None:
    from encore_local.twin import daemon

    return daemon.read_state(state_dir)


class DemoFailed(Exception):
    """The demo ran, but what it checked did not hold."""


def _demo(args: argparse.Namespace) -> None:
    from encore_local.demo.imported import run_imported_demo
    from encore_local.demo.run import run_demo

    if args.data:
        result = run_imported_demo(args.data, args.out, progress=not args.quiet, port=args.port,
                                   keep_serving=not args.exit, verbose=args.verbose)  # fmt: skip
    else:
        result = run_demo(_params(args), args.out, scale=args.scale, progress=not args.quiet, port=args.port,
                          keep_serving=not args.exit, verbose=args.verbose)  # fmt: skip
    failed = [name for name, ok in result.checks.items() if not ok]
    if failed:
        raise DemoFailed(f"{len(failed)} check(s) failed: {'; '.join(failed)}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"simulate": _simulate, "twin": _twin, "job": _job, "api": _api, "import": _import, "demo": _demo,
                "online-test": _online_test, "batch": _batch}  # fmt: skip
    try:
        handlers[args.command](args)
    except UsageError as exc:
        print(f"{PROG} {args.command}: {exc}", file=sys.stderr)
        return 2
    except DemoFailed as exc:
        print(f"{PROG} {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # a folder that cannot be written, a full disk
        print(f"{PROG} {args.command}: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
