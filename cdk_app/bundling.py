"""Docker-free asset bundling: Lambda layers are built on this machine with pip's cross-platform wheels.

``make setup`` downloads the manylinux wheels once (``build/wheels/lambda``); bundling then installs from that
folder with ``--no-index``, so ``cdk synth`` needs neither Docker nor network.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import shutil
import subprocess
import sys
from pathlib import Path

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3_assets as assets
from constructs import Construct

ROOT = Path(__file__).resolve().parent.parent
WHEELS = ROOT / "build" / "wheels" / "lambda"
LAMBDA_PYTHON = "3.14"
# Lambda's Python 3.14 runs on Amazon Linux 2023 (glibc 2.34): manylinux_2_28 wheels run there too (numpy 2.3
# publishes no manylinux2014 wheel).
PLATFORM_ARGS = [
    "--platform",
    "manylinux2014_x86_64",
    "--platform",
    "manylinux_2_28_x86_64",
    "--only-binary=:all:",
    "--implementation",
    "cp",
    "--python-version",
    LAMBDA_PYTHON,
]
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "tests")
# The Lambda Python runtime's own AWS SDK and what it depends on: never shipped in a layer (see
# layers/dependencies/requirements.txt).
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3")


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def strip_distributions(site: Path, names: tuple[str, ...] = RUNTIME_PROVIDED) -> list[str]:
    """Remove installed distributions (every file their RECORD lists) from a ``--target`` folder."""
    removed = []
    wanted = {_canonical(n) for n in names}
    for dist in importlib.metadata.distributions(path=[str(site)]):
        if _canonical(dist.metadata["Name"]) not in wanted:
            continue
        for file in dist.files or []:
            path = Path(str(dist.locate_file(file)))
            if path.is_file():
                path.unlink()
        removed.append(dist.metadata["Name"])
    for folder in sorted((p for p in site.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()
    return removed


def download_wheels(requirements: Path = ROOT / "layers" / "dependencies" / "requirements.txt") -> None:
    """What ``make setup`` runs: fetch the Lambda platform's wheels for the dependency layer."""
    WHEELS.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        *PLATFORM_ARGS,
        "-d",
        str(WHEELS),
        "-r",
        str(requirements),
    ]
    subprocess.run(cmd, check=True)


@jsii.implements(ILocalBundling)
class _PipInstall:
    def __init__(self, requirements: Path) -> None:
        self.requirements = requirements

    def try_bundle(self, output_dir: str, *, image: DockerImage, **_: object) -> bool:
        if not WHEELS.is_dir():
            raise RuntimeError(f"no Lambda wheels in {WHEELS}: run `make setup` (it downloads them once)")
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            # .pyc files compiled here would be for this machine's Python, not the runtime's: dead weight.
            "--no-compile",
            "--no-index",
            "--find-links",
            str(WHEELS),
            *PLATFORM_ARGS,
            "--target",
            str(Path(output_dir) / "python"),
            "-r",
            str(self.requirements),
        ]
        subprocess.run(cmd, check=True)
        site = Path(output_dir) / "python"
        strip_distributions(site)
        shutil.rmtree(site / "bin", ignore_errors=True)  # console scripts with this machine's interpreter path
        return True


@jsii.implements(ILocalBundling)
class _CopyPackages:
    """Python packages copied into the asset, under ``into`` (``python`` for a layer, the root for a zip)."""

    def __init__(self, packages: tuple[Path, ...], into: str = "") -> None:
        self.packages, self.into = packages, into

    def try_bundle(self, output_dir: str, *, image: DockerImage, **_: object) -> bool:
        for package in self.packages:
            shutil.copytree(package, Path(output_dir) / self.into / package.name, ignore=_IGNORE)
        return True


def _no_docker(local: object) -> BundlingOptions:
    # The image is never pulled: local bundling always succeeds or raises.
    return BundlingOptions(image=DockerImage.from_registry("local-bundling-only"), local=local)  # type: ignore[arg-type]


def _hash_files(*paths: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        files = (
            sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
            if path.is_dir()
            else [path]
        )
        for f in files:
            digest.update(str(f.relative_to(ROOT)).encode())
            digest.update(f.read_bytes())
    return digest.hexdigest()


def dependencies_layer_code() -> lambda_.Code:
    """Third-party packages for the handlers (manylinux wheels, installed without Docker)."""
    req = ROOT / "layers" / "dependencies" / "requirements.txt"
    return lambda_.Code.from_asset(
        str(req.parent),
        asset_hash=_hash_files(req, Path(__file__)),
        asset_hash_type=AssetHashType.CUSTOM,
        bundling=_no_docker(_PipInstall(req)),
    )


def shared_layer_code() -> lambda_.Code:
    """The shared domain library ``encore`` laid out as a layer (``python/encore``)."""
    package = ROOT / "layers" / "shared" / "encore"
    return lambda_.Code.from_asset(
        str(package),
        asset_hash=_hash_files(package),
        asset_hash_type=AssetHashType.CUSTOM,
        bundling=_no_docker(_CopyPackages((package,), into="python")),
    )


def function_code(folder: str) -> lambda_.Code:
    """A handler folder under ``lambdas/`` (entry points only; everything else comes from the layers)."""
    return lambda_.Code.from_asset(str(ROOT / "lambdas" / folder), exclude=["__pycache__", "*.pyc"])


# The packages a Glue job imports besides its script: the shared library and the Spark transforms and I/O.
GLUE_PACKAGES = (ROOT / "layers" / "shared" / "encore", ROOT / "glue_jobs" / "encore_spark")


def glue_library_asset(scope: Construct, id: str) -> assets.Asset:
    """One zip with ``encore/`` and ``encore_spark/`` at its root, for a job's ``--extra-py-files``."""
    return assets.Asset(
        scope,
        id,
        path=str(ROOT / "glue_jobs"),
        asset_hash=_hash_files(*GLUE_PACKAGES),
        asset_hash_type=AssetHashType.CUSTOM,
        bundling=_no_docker(_CopyPackages(GLUE_PACKAGES)),
    )
