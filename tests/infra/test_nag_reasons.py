"""cdk-nag acknowledgements are true: each reason describes a permission the templates have, on the role it
is acknowledged on, and no table keeps reasons for permissions that no longer exist."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from cdk_app import nag
from cdk_app.deploy_rules import Assembly

pytestmark = pytest.mark.infra


def _policies(a: Assembly) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    for lid, res in a.of_type("AWS::IAM::Policy").items():
        yield lid, res["Properties"]["PolicyDocument"]["Statement"]


def _list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else [v]


def test_every_reason_in_the_tables_is_for_a_permission_that_exists(assemblies: dict[str, Assembly]) -> None:
    actions: set[str] = set()
    star_actions: set[str] = set()
    resources: list[tuple[str, str]] = []
    for a in assemblies.values():
        for lid, statements in _policies(a):
            for st in statements:
                acts = [str(x) for x in _list(st["Action"])]
                actions.update(acts)
                for r in _list(st.get("Resource", [])):
                    flat = nag._flatten(r)
                    resources.append((lid, flat))
                    if flat == "*":
                        star_actions.update(acts)
    assert sorted(set(nag.GRANT_WILDCARDS) - actions) == []
    assert sorted(set(nag.STAR_RESOURCE_ACTIONS) - star_actions) == []
    for pattern, _ in nag.RESOURCE_WILDCARDS:
        assert any(re.fullmatch(pattern, r) for _, r in resources), pattern
    readers = {lid for lid, r in resources if re.fullmatch(nag.ASSET_BUCKET, r)}
    assert len(readers) == len(nag.ASSET_READERS)


def _acknowledged(a: Assembly) -> Iterator[tuple[str, str, str]]:
    report = json.loads((a.out_dir / "validation-report.json").read_text())
    for plugin in report["pluginReports"]:
        for v in plugin["suppressedViolations"]:
            for c in v["violatingConstructs"]:
                yield v["ruleName"], c["constructPath"], v["reason"]


def _logical_ids(a: Assembly) -> dict[str, str]:
    """Construct path (as nag reports it) -> logical id, from the stack's metadata in the assembly."""
    manifest = json.loads((a.out_dir / "manifest.json").read_text())
    stack = next(x for x in manifest["artifacts"].values() if x["type"] == "aws:cloudformation:stack")
    metadata = stack.get("metadata", {})
    if "additionalMetadataFile" in stack:
        metadata = metadata | json.loads((a.out_dir / stack["additionalMetadataFile"]).read_text())
    return {
        path.lstrip("/"): entry["data"]
        for path, entries in metadata.items()
        for entry in entries
        if entry["type"] == "aws:cdk:logicalId"
    }


def test_each_star_reason_names_exactly_that_policys_actions(assemblies: dict[str, Assembly]) -> None:
    for a in assemblies.values():
        by_path = {
            path: a.resources[lid] for path, lid in _logical_ids(a).items() if lid in a.of_type("AWS::IAM::Policy")
        }
        checked = 0
        for rule, path, reason in _acknowledged(a):
            if rule != "AwsSolutions-IAM5[Resource::*]" or path not in by_path:
                continue
            statements = by_path[path]["Properties"]["PolicyDocument"]["Statement"]
            on_star = {str(x) for st in statements if "*" in _list(st.get("Resource", [])) for x in _list(st["Action"])}
            named = set(re.findall(r"([a-z0-9-]+:[A-Za-z]+):", reason))
            assert named == on_star, path
            checked += 1
        assert checked >= 5


def test_asset_bucket_reasons_describe_the_role_they_are_on(assemblies: dict[str, Assembly]) -> None:
    found = {}
    for rule, path, reason in _acknowledged(assemblies["dev"]):
        if rule.startswith("AwsSolutions-IAM5[Resource::arn:") and "assets" in rule:
            found[path] = reason
    assert len(found) == 3
    for path, reason in found.items():
        if "TrainingRole" in path:
            assert "training source" in reason and "Glue" not in reason
        elif "CDKBucketDeployment" in path:
            assert "web app's files" in reason and "Glue" not in reason
        else:
            assert "/Features/JobRole/" in path and "Glue job scripts" in reason and "training" not in reason
