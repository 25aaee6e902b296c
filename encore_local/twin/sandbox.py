"""What a Lambda function or a Glue job may import: only what it ships, what its platform provides and the
standard library. The twin's runtimes (``lambda_runtime``, ``glue_worker``) install ``ShippedOnly`` before they
load any of the application's code, so a module missing from a code asset, a layer or ``--extra-py-files``
fails here with ``ModuleNotFoundError``, as it would in AWS, instead of being found in this checkout.

Only the standard library and ``importlib.metadata`` are used here: this module is imported into the runtimes
before the application's code, and must not bring a copy of that code with it.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.metadata
import re
import sys
from collections.abc import Iterable, Sequence
from types import ModuleType

# Top-level names of this repository's own code: they must come from what ships, never from the checkout.
PROJECT_PACKAGES = frozenset({"encore", "encore_spark", "encore_local", "cdk_app", "glue_jobs", "lambdas"})


def distribution_closure(names: Iterable[str]) -> set[str]:
    """Top-level import names of the installed distributions ``names`` and of everything they require."""
    by_dist: dict[str, list[str]] = {}
    for top, dists in importlib.metadata.packages_distributions().items():
        for dist in dists:
            by_dist.setdefault(_canonical(dist), []).append(top)
    seen: set[str] = set()
    todo = [_canonical(n) for n in names]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for requirement in requires:
            if "extra ==" in requirement:
                continue
            match = re.match(r"[A-Za-z0-9._-]+", requirement)
            if match:
                todo.append(_canonical(match.group(0)))
    tops = {top for dist in seen for top in by_dist.get(dist, [])}
    return tops | {n.replace("-", "_") for n in names}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


class ShippedOnly(importlib.abc.MetaPathFinder):
    """Refuse a top-level import unless it is found on ``shipped`` paths, is in ``provided`` or the standard
    library. ``where`` names the code in the message (``the Lambda function X``)."""

    def __init__(self, shipped: Sequence[str], provided: Iterable[str], where: str) -> None:
        self.shipped = list(shipped)
        self.provided = frozenset(provided) | frozenset(sys.stdlib_module_names)
        self.where = where

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if "." in fullname or path is not None:
            return None  # submodules are found where their package was
        spec = importlib.machinery.PathFinder.find_spec(fullname, self.shipped)
        if spec is not None:
            return spec
        if (fullname in self.provided or fullname.startswith("_")) and fullname not in PROJECT_PACKAGES:
            return None  # the normal finders find it where the platform keeps it (``_*``: the interpreter's own)
        raise ModuleNotFoundError(
            f"No module named '{fullname}': {self.where} does not ship it, and its platform does not provide it",
            name=fullname,
        )


def install(shipped: Sequence[str], provided: Iterable[str], where: str) -> ShippedOnly:
    """Put the shipped paths first and the guard in front of every other finder."""
    for entry in reversed(shipped):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    guard = ShippedOnly(shipped, provided, where)
    sys.meta_path.insert(0, guard)
    return guard
