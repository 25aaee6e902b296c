"""The rules AWS applies at deploy and run time, on the synthesized assemblies (dev and prod, two regions).

Each rule passes on what ships, and each catches the defect it exists for when that defect is put back into a
copy of the template (so no rule can pass by reading nothing).
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cdk_app import deploy_rules as rules
from cdk_app.deploy_rules import Assembly

pytestmark = pytest.mark.infra


def _mutated(a: Assembly, change: Callable[[dict[str, Any]], None]) -> Assembly:
    template = copy.deepcopy(a.template)
    change(template)
    return Assembly(a.out_dir, template, a.region)


def _of_type(template: dict[str, Any], kind: str) -> dict[str, Any]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


@pytest.mark.parametrize("rule", rules.RULES, ids=lambda r: r.__name__)
@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_what_ships_passes_every_rule(assemblies: dict[str, Assembly], stage: str, rule: Any) -> None:
    assert rule(assemblies[stage]) == []


def test_a_vpc_function_without_eni_rights_is_caught(assemblies: dict[str, Assembly]) -> None:
    def drop_eni(template: dict[str, Any]) -> None:
        for policy in _of_type(template, "AWS::IAM::Policy").values():
            doc = policy["Properties"]["PolicyDocument"]
            doc["Statement"] = [s for s in doc["Statement"] if s.get("Sid") != "NetworkInterfacesInTheVpc"]

    problems = rules.vpc_functions_can_create_network_interfaces(_mutated(assemblies["dev"], drop_eni))
    assert len(problems) == 2 and all("ec2:CreateNetworkInterface" in p for p in problems)


def test_a_glue_job_without_its_spark_package_is_caught(assemblies: dict[str, Assembly], tmp_path: Path) -> None:
    a = assemblies["dev"]
    job = next(iter(_of_type(a.template, "AWS::Glue::Job").values()))
    library = a.asset(job["Properties"]["DefaultArguments"]["--extra-py-files"])
    only_encore = tmp_path / "asset.onlyencore"
    shutil.copytree(library / "encore", only_encore / "encore")  # what used to ship: the shared library alone

    def ship_shared_library_only(template: dict[str, Any]) -> None:
        for j in _of_type(template, "AWS::Glue::Job").values():
            j["Properties"]["DefaultArguments"]["--extra-py-files"] = "s3://assets/onlyencore.zip"

    shutil.copytree(a.out_dir, tmp_path / "out")
    shutil.copytree(only_encore, tmp_path / "out" / only_encore.name)
    moved = Assembly(tmp_path / "out", a.template, a.region)
    problems = rules.glue_jobs_import_what_they_ship(_mutated(moved, ship_shared_library_only))
    assert problems and all("encore_spark" in p for p in problems)


def _training_state(template: dict[str, Any]) -> tuple[dict[str, Any], list[Any]]:
    for machine in _of_type(template, "AWS::StepFunctions::StateMachine").values():
        parts = machine["Properties"]["DefinitionString"]["Fn::Join"][1]
        if any(isinstance(p, str) and "createTrainingJob" in p for p in parts):
            return machine, parts
    raise AssertionError("no training state")


def _in_training_state(old: str, new: str) -> Callable[[dict[str, Any]], None]:
    def replace(template: dict[str, Any]) -> None:
        _, parts = _training_state(template)
        parts[:] = [p.replace(old, new) if isinstance(p, str) else p for p in parts]

    return replace


def test_training_without_sync_is_caught(assemblies: dict[str, Assembly]) -> None:
    request_response = _in_training_state("createTrainingJob.sync", "createTrainingJob")
    problems = rules.sync_where_the_output_is_read(_mutated(assemblies["dev"], request_response))
    assert problems and "ModelArtifacts" in problems[0]


def test_https_channels_are_caught(assemblies: dict[str, Assembly]) -> None:
    path_style = _in_training_state('"S3Uri":"s3://', '"S3Uri":"https://s3.amazonaws.com/')
    problems = rules.s3_locations_are_s3_uris(_mutated(assemblies["dev"], path_style))
    assert len(problems) == 3


def test_a_foreign_region_is_caught(assemblies: dict[str, Assembly]) -> None:
    def default_region(template: dict[str, Any]) -> None:
        for job in _of_type(template, "AWS::Glue::Job").values():
            config = job["Properties"]["DefaultArguments"]["--encore_config"]["Fn::Join"][1]
            config[0] = config[0].replace('"region": "eu-west-1"', '"region": "us-east-1"')

    problems = rules.no_foreign_region(_mutated(assemblies["dev"], default_region))
    assert problems and "us-east-1" in problems[0]
    assert any("--encore_config region is us-east-1" in p for p in problems)


def test_an_environment_past_lambdas_4_kb_is_caught(assemblies: dict[str, Assembly]) -> None:
    many = {f"p{i}": {"filter": {"genres_in": ["synthwave", "vaporwave"]}, "share": 0.1} for i in range(40)}

    def many_promotions(template: dict[str, Any]) -> None:
        for fn in _of_type(template, "AWS::Lambda::Function").values():
            env = fn["Properties"].get("Environment", {}).get("Variables", {})
            if "ENCORE_SERVING" in env:
                env["ENCORE_SERVING"] = json.dumps({"promotions": many})

    problems = rules.lambda_environments_fit(_mutated(assemblies["dev"], many_promotions))
    assert problems and all("past Lambda's 4096" in p for p in problems)


def test_a_publisher_without_the_topic_key_is_caught(assemblies: dict[str, Assembly]) -> None:
    def drop_key_grants(template: dict[str, Any]) -> None:
        for lid, policy in _of_type(template, "AWS::IAM::Policy").items():
            if "StateMachine" in lid:
                doc = policy["Properties"]["PolicyDocument"]
                doc["Statement"] = [s for s in doc["Statement"] if "kms:Decrypt" not in json.dumps(s)]

    problems = rules.encrypted_topics_can_be_published_to(_mutated(assemblies["dev"], drop_key_grants))
    assert len([p for p in problems if "kms:GenerateDataKey" in p]) == 2  # nightly and charts


def test_a_dashboard_metric_without_its_dimensions_is_caught(assemblies: dict[str, Assembly]) -> None:
    def undimensioned(template: dict[str, Any]) -> None:
        (dash,) = _of_type(template, "AWS::CloudWatch::Dashboard").values()
        parts = dash["Properties"]["DashboardBody"]["Fn::Join"][1]
        for i, p in enumerate(parts):
            if isinstance(p, str) and '"CacheHit","service","encore"' in p:
                parts[i] = p.replace('"CacheHit","service","encore"', '"CacheHits"')

    problems = rules.dashboard_shows_emitted_metrics(_mutated(assemblies["dev"], undimensioned))
    assert problems and "CacheHits" in problems[0]


def test_a_layer_with_a_second_sdk_or_bytecode_is_caught(assemblies: dict[str, Assembly], tmp_path: Path) -> None:
    a = assemblies["dev"]
    out = tmp_path / "out"
    shutil.copytree(a.out_dir, out, symlinks=True)
    moved = Assembly(out, a.template, a.region)
    fn = next(f for f in _of_type(a.template, "AWS::Lambda::Function").values() if f["Properties"].get("Layers"))
    deps = next(
        moved.layer_asset(layer["Ref"])
        for layer in fn["Properties"]["Layers"]
        if (moved.layer_asset(layer["Ref"]) / "python" / "pydantic").exists()
    )
    info = deps / "python" / "botocore-1.44.8.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: botocore\nVersion: 1.44.8\n")
    (deps / "python" / "pydantic" / "__init__.cpython-311.pyc").write_bytes(b"")
    problems = rules.layers_do_not_conflict(moved)
    assert any("botocore" in p for p in problems) and any(".pyc" in p for p in problems)


def test_training_metric_definitions_read_the_candidates_figures(
    assemblies: dict[str, Assembly], capsys: pytest.CaptureFixture[str]
) -> None:
    """Each metric definition matches exactly one line of train.py's output, the candidate's own figure (the
    per-source lines, popularity's among them, must not match)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "sagemaker"))
    import train  # noqa: PLC0415 - sagemaker/ is a script folder, not a package

    report = {
        "home": {
            "hybrid": {"ndcg@10": 0.25, "recall@10": 0.3, "coverage@10": 0.5},
            "popularity": {"ndcg@10": 0.125},
            "cf": {"ndcg@10": 0.2},
        },
        "next": {"hybrid": {"hit_rate@10": 0.4}},
    }
    train.print_metrics(report)
    lines = capsys.readouterr().out.splitlines()
    (definition,) = [d for d in assemblies["dev"].state_machines().values() if "createTrainingJob" in json.dumps(d)]
    (state,) = [s for s in definition["States"].values() if "createTrainingJob" in str(s.get("Resource"))]
    found = {}
    for metric in state["Parameters"]["AlgorithmSpecification"]["MetricDefinitions"]:
        matches = [m.group(1) for line in lines if (m := re.search(metric["Regex"], line))]
        assert len(matches) == 1, (metric, matches)
        found[metric["Name"]] = float(matches[0])
    assert found == {"ndcg_at_10": 0.25, "recall_at_10": 0.3, "coverage": 0.5, "hit_rate_at_10": 0.4}
