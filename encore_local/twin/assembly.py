"""The twin's source of truth: the cloud assembly ``cdk synth`` writes for the twin's stage, with every intrinsic
function resolved to the twin's physical names, as CloudFormation resolves them when it creates the stack.

``synthesize`` runs the CDK CLI (``cdk synth -c stage=local``) unless ``build/twin/cdk.out`` was synthesized from
the same inputs (a digest of the CDK app, the handlers, the layers, the jobs and the training source).
``TwinStack`` then reads what the twin provisions and runs from the template: names, Lambda handlers, code assets,
layers and environments, Glue scripts and ``DefaultArguments``, state machine definitions and roles, and every
role's policy statements.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cdk_app.deploy_rules import Assembly, Policy
from encore.config import EncoreConfig, Stage
from encore_local.errors import UsageError

ROOT = Path(__file__).resolve().parents[2]
TWIN_BUILD = ROOT / "build" / "twin"
ACCOUNT = "123456789012"
# What the stack is built from: a change to any of these means a new synth.
SYNTH_INPUTS = ("app.py", "cdk.json", "cdk_app", "lambdas", "layers", "glue_jobs", "sagemaker", "webapp")
_DIGEST_FILE = ".encore-inputs"


def inputs_digest(root: Path = ROOT) -> str:
    digest = hashlib.sha256()
    for name in SYNTH_INPUTS:
        path = root / name
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for file in files:
            if "__pycache__" in file.parts or file.suffix == ".pyc" or ".egg-info" in str(file):
                continue
            digest.update(str(file.relative_to(root)).encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()


def synthesize(stage: str, region: str, out_dir: Path, *, progress: bool = False) -> Path:
    """The cloud assembly for ``stage`` in ``region``: reused when its inputs have not changed, else ``cdk synth``."""
    key = f"{stage}:{region}:{inputs_digest()}"
    marker = out_dir / _DIGEST_FILE
    if marker.exists() and marker.read_text() == key:
        return out_dir
    npx = shutil.which("npx")
    cli = ROOT / "node_modules" / ".bin" / "cdk"
    if npx is None or not cli.exists():
        raise UsageError("the twin runs what `cdk synth` produces, and the CDK CLI is not installed: run `make setup`")
    if progress:
        print(f"twin: cdk synth -c stage={stage} ({region}) into {out_dir.relative_to(ROOT)} ...", flush=True)
    shutil.rmtree(out_dir, ignore_errors=True)
    env = os.environ | {
        "CDK_DEFAULT_REGION": region,
        "AWS_REGION": region,
        "CDK_DISABLE_VERSION_CHECK": "1",
        "CDK_CLI_TELEMETRY_OPTOUT": "1",
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    for name in ("CDK_DEFAULT_ACCOUNT", "AWS_ENDPOINT_URL"):  # no account: no lookups; the twin is not AWS
        env.pop(name, None)
    cmd = [str(cli), "synth", "--no-notices", "--quiet", "-c", f"stage={stage}", "-o", str(out_dir)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise UsageError("cdk synth failed:\n" + "\n".join(tail))
    marker.write_text(key)
    return out_dir


def stage_config(stage: Stage) -> EncoreConfig:
    """The stage's configuration as the CDK app builds it (cdk.json's overrides on the stage's defaults)."""
    stages = json.loads((ROOT / "cdk.json").read_text())["context"]["stages"]
    return EncoreConfig.for_stage(stage, stages.get(stage) or {})


def _published(asset: Path) -> Path:
    """A staged folder as the zip the CDK CLI publishes to S3 (Glue's ``--extra-py-files`` reads that zip)."""
    if not asset.is_dir():
        return asset
    target = asset.with_name(asset.name + ".zip")
    if not target.exists():
        partial = target.with_suffix(".partial")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as z:
            for path in sorted(asset.rglob("*")):
                if path.is_file():
                    z.write(path, str(path.relative_to(asset)))
        partial.rename(target)
    return target


# -- resolving the template -----------------------------------------------------------------------------------

# The property that names a resource, by type; Ref gives the name (or, where AWS says so, the ARN).
_NAME_PROPERTY = {
    "AWS::DynamoDB::GlobalTable": "TableName",
    "AWS::DynamoDB::Table": "TableName",
    "AWS::KinesisFirehose::DeliveryStream": "DeliveryStreamName",
    "AWS::Glue::Job": "Name",
    "AWS::Glue::SecurityConfiguration": "Name",
    "AWS::SageMaker::ModelPackageGroup": "ModelPackageGroupName",
    "AWS::ApiGateway::RestApi": "Name",
    "AWS::S3::Bucket": "BucketName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::IAM::Role": "RoleName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::StepFunctions::StateMachine": "StateMachineName",
    "AWS::Logs::LogGroup": "LogGroupName",
}


@dataclass
class Function:
    logical_id: str
    name: str
    arn: str
    handler: str
    code: Path
    layers: list[Path]
    environment: dict[str, str]
    role: str  # the principal: <stack>.<role's logical id>
    timeout_s: int
    memory_mb: int
    log_group: str | None = None  # the name of its log group (LoggingConfig), where its output goes


@dataclass
class GlueJob:
    logical_id: str
    name: str
    script: Path
    default_arguments: dict[str, str]
    extra_py_files: list[Path]
    role: str  # the principal
    max_concurrent_runs: int


@dataclass
class StateMachine:
    logical_id: str
    name: str
    arn: str
    definition: str
    role: str  # the principal
    role_arn: str


@dataclass
class TwinStack:
    """A synthesized stack as the twin deploys it."""

    assembly: Assembly
    region: str
    stack_name: str
    names: dict[str, str] = field(default_factory=dict)  # logical id -> physical name
    _read: dict[str, Any] = field(default_factory=dict, repr=False)  # what was read from the template, once

    @classmethod
    def load(cls, out_dir: Path) -> TwinStack:
        assembly = Assembly.load(out_dir)
        manifest = json.loads((out_dir / "manifest.json").read_text())
        name = next(
            str(a.get("displayName") or k) for k, a in manifest["artifacts"].items() if a["type"].endswith("stack")
        )
        stack = cls(assembly, assembly.region, name)
        stack.names = {lid: stack._physical_name(lid, res) for lid, res in assembly.resources.items()}
        return stack

    @property
    def resources(self) -> dict[str, Any]:
        return self.assembly.resources

    def of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        return self.assembly.of_type(kind)

    def _physical_name(self, lid: str, res: dict[str, Any]) -> str:
        prop = _NAME_PROPERTY.get(res["Type"])
        given = res.get("Properties", {}).get(prop) if prop else None
        if isinstance(given, str):
            return given
        if res["Type"] == "AWS::Glue::Database":
            return str(res["Properties"]["DatabaseInput"]["Name"])
        # CloudFormation's generated names: <stack>-<logical id>-<suffix>, stable here for a logical id.
        suffix = hashlib.sha256(lid.encode()).hexdigest()[:12]
        name = f"{self.stack_name}-{lid}-{suffix}"
        return name.lower()[:63] if res["Type"] == "AWS::S3::Bucket" else name[:64]

    def arn(self, lid: str) -> str:
        res, name = self.resources[lid], self.names[lid]
        kind, region = res["Type"], self.region
        arns = {
            "AWS::IAM::Role": f"arn:aws:iam::{ACCOUNT}:role/{name}",
            "AWS::S3::Bucket": f"arn:aws:s3:::{name}",
            "AWS::DynamoDB::GlobalTable": f"arn:aws:dynamodb:{region}:{ACCOUNT}:table/{name}",
            "AWS::DynamoDB::Table": f"arn:aws:dynamodb:{region}:{ACCOUNT}:table/{name}",
            "AWS::Lambda::Function": f"arn:aws:lambda:{region}:{ACCOUNT}:function:{name}",
            "AWS::Lambda::LayerVersion": f"arn:aws:lambda:{region}:{ACCOUNT}:layer:{name}:1",
            "AWS::SNS::Topic": f"arn:aws:sns:{region}:{ACCOUNT}:{name}",
            "AWS::StepFunctions::StateMachine": f"arn:aws:states:{region}:{ACCOUNT}:stateMachine:{name}",
            "AWS::KMS::Key": f"arn:aws:kms:{region}:{ACCOUNT}:key/{name}",
            "AWS::KinesisFirehose::DeliveryStream": f"arn:aws:firehose:{region}:{ACCOUNT}:deliverystream/{name}",
            "AWS::Logs::LogGroup": f"arn:aws:logs:{region}:{ACCOUNT}:log-group:{name}:*",
            "AWS::SageMaker::ModelPackageGroup": f"arn:aws:sagemaker:{region}:{ACCOUNT}:model-package-group/{name}",
            "AWS::Glue::Job": f"arn:aws:glue:{region}:{ACCOUNT}:job/{name}",
        }
        return arns.get(kind, f"arn:aws:cloudformation:{region}:{ACCOUNT}:resource/{name}")

    def _ref(self, target: str) -> str:
        pseudo = {
            "AWS::Partition": "aws",
            "AWS::Region": self.region,
            "AWS::AccountId": ACCOUNT,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": self.stack_name,
            "AWS::StackId": f"arn:aws:cloudformation:{self.region}:{ACCOUNT}:stack/{self.stack_name}/twin",
        }
        if target in pseudo:
            return pseudo[target]
        kind = self.resources[target]["Type"]
        if kind in ("AWS::SNS::Topic", "AWS::StepFunctions::StateMachine", "AWS::Lambda::LayerVersion"):
            return self.arn(target)
        return self.names[target]

    def _get_att(self, target: str, attribute: str) -> str:
        if attribute == "Arn":
            return self.arn(target)
        if attribute == "Name":
            return self.names[target]
        if attribute == "RegionalDomainName":  # a bucket's
            return f"{self.names[target]}.s3.{self.region}.amazonaws.com"
        return f"{self.names[target]}.{attribute}"

    def resolve(self, value: Any) -> Any:  # noqa: PLR0911 - one return per intrinsic
        """A template value with its intrinsic functions evaluated for the twin."""
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((fn, arg),) = value.items()
            if fn == "Ref":
                return self._ref(arg)
            if fn == "Fn::GetAtt":
                target, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return self._get_att(target, attribute)
            if fn == "Fn::Join":
                return str(arg[0]).join(str(self.resolve(p)) for p in self.resolve(arg[1]))
            if fn == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))
                return re.sub(r"\$\{([^}]+)\}", lambda m: self._sub(m.group(1), variables), text)
            if fn == "Fn::Select":
                return self.resolve(arg[1])[int(self.resolve(arg[0]))]
            if fn == "Fn::Split":
                return str(self.resolve(arg[1])).split(arg[0])
            if fn == "Fn::GetAZs":
                return [f"{self.region}a", f"{self.region}b", f"{self.region}c"]
        return {k: self.resolve(v) for k, v in value.items()}

    def _sub(self, name: str, variables: dict[str, Any]) -> str:
        if name in variables:
            return str(variables[name])
        if "." in name and not name.startswith("AWS::"):
            return self._get_att(*name.split(".", 1))
        return self._ref(name)

    # -- what the twin runs ------------------------------------------------------------------------------------

    def properties(self, lid: str) -> dict[str, Any]:
        return self.resolve(self.resources[lid].get("Properties", {}))  # type: ignore[no-any-return]

    def asset(self, s3_url: str) -> Path:
        return self.assembly.asset(s3_url)

    def functions(self) -> dict[str, Function]:
        """Encore's functions by logical id (CDK's own providers, which run only at deploy time, left out)."""
        if "functions" in self._read:
            return self._read["functions"]  # type: ignore[no-any-return]
        out = self._read["functions"] = {}
        for lid, res in self.of_type("AWS::Lambda::Function").items():
            raw = res["Properties"]
            if not any(str(layer.get("Ref", "")).startswith("SharedLibrary") for layer in raw.get("Layers", [])):
                continue  # CDK's custom-resource providers (run only while CloudFormation deploys) lack our layer
            props = self.properties(lid)
            layers = [self.assembly.layer_asset(layer["Ref"]) for layer in raw["Layers"]]
            out[lid] = Function(
                logical_id=lid,
                name=self.names[lid],
                arn=self.arn(lid),
                handler=props["Handler"],
                code=self.assembly.asset(raw["Code"]["S3Key"]),
                layers=layers,
                environment=dict(props.get("Environment", {}).get("Variables", {})),
                role=self.principal(raw["Role"]["Fn::GetAtt"][0]),
                timeout_s=int(props.get("Timeout", 3)),
                memory_mb=int(props.get("MemorySize", 128)),
                log_group=props.get("LoggingConfig", {}).get("LogGroup"),
            )
        return out

    def glue_jobs(self) -> dict[str, GlueJob]:
        if "glue_jobs" in self._read:
            return self._read["glue_jobs"]  # type: ignore[no-any-return]
        out = self._read["glue_jobs"] = {}
        for lid in self.of_type("AWS::Glue::Job"):
            props = self.properties(lid)
            args = {k: str(v) for k, v in props.get("DefaultArguments", {}).items()}
            extra = [_published(self.asset(u)) for u in args.get("--extra-py-files", "").split(",") if u]
            role = self.role_of_arn(str(props["Role"])) or str(props["Role"])
            limit = int(props.get("ExecutionProperty", {}).get("MaxConcurrentRuns", 1))
            script = self.asset(props["Command"]["ScriptLocation"])
            out[lid] = GlueJob(lid, props["Name"], script, args, extra, self.principal(role), limit)
        return out

    def state_machines(self) -> dict[str, StateMachine]:
        out = {}
        for lid, res in self.of_type("AWS::StepFunctions::StateMachine").items():
            props = self.properties(lid)
            role = res["Properties"]["RoleArn"]["Fn::GetAtt"][0]
            out[lid] = StateMachine(
                lid, self.names[lid], self.arn(lid), props["DefinitionString"], self.principal(role), self.arn(role)
            )
        return out

    def principal(self, role_id: str) -> str:
        """How the twin names a role of this stack as a caller (no ``/``: it is part of an access key id)."""
        return f"{self.stack_name}.{role_id}"

    def role_of_arn(self, arn: str) -> str | None:
        """The logical id of the role with this ARN (the twin's principals are the template's roles)."""
        for lid in self.of_type("AWS::IAM::Role"):
            if self.arn(lid) == arn:
                return lid
        return None

    def api_integrations(self) -> dict[tuple[str, str], Function]:
        """(HTTP method, resource path) -> the function its Lambda proxy integration invokes, as API Gateway
        routes them (mock integrations, such as the CORS preflight, left out)."""

        def path(ref: Any) -> str:
            if isinstance(ref, dict) and "Fn::GetAtt" in ref:  # the API's root resource
                return ""
            props = self.resources[ref["Ref"]]["Properties"]
            return f"{path(props['ParentId'])}/{props['PathPart']}"

        functions = self.functions()
        out = {}
        for res in self.of_type("AWS::ApiGateway::Method").values():
            props = res["Properties"]
            uri = json.dumps(props.get("Integration", {}).get("Uri", ""))
            target = next((lid for lid in functions if f'["{lid}", "Arn"]' in uri), None)
            if target is not None:
                out[(props["HttpMethod"], path(props["ResourceId"]) or "/")] = functions[target]
        return out

    def api_key_values(self) -> list[str]:
        """The values the template gives its API keys (a dynamic reference to a secret, for the site's key);
        keys without one get theirs from API Gateway (the twin's is ``DEFAULT_API_KEY``)."""
        return [
            str(p["Value"]) for lid in self.of_type("AWS::ApiGateway::ApiKey") if "Value" in (p := self.properties(lid))
        ]

    def policy(self, role_id: str) -> Policy:
        """The role's policies in the template (inline and attached), resolved to the twin's names; built once."""
        key = f"policy:{role_id}"
        if key not in self._read:
            self._read[key] = Policy([self.resolve(s) for s in self.assembly.statements_of(role_id)])
        return self._read[key]  # type: ignore[no-any-return]

    def topic_key(self, topic_arn: str) -> str | None:
        """The KMS key a topic of this stack is encrypted with (None: not this stack's, or not encrypted)."""
        for lid in self.of_type("AWS::SNS::Topic"):
            if self.arn(lid) == topic_arn:
                key = self.properties(lid).get("KmsMasterKeyId")
                return str(key) if key else None
        return None

    def output(self, name: str) -> str:
        return str(self.resolve(self.assembly.template["Outputs"][name]["Value"]))


class Deployment:
    """The stacks deployed into one twin, looked up together (a name is unique across them, as in an account)."""

    def __init__(self, region: str) -> None:
        self.region = region
        self.stacks: list[TwinStack] = []

    def add(self, stack: TwinStack) -> None:
        self.stacks = [s for s in self.stacks if s.stack_name != stack.stack_name] + [stack]

    def functions(self) -> dict[str, Function]:
        return {fn.name: fn for stack in self.stacks for fn in stack.functions().values()}

    def function(self, name: str) -> Function:
        """A function by its name or ARN."""
        name = name.rsplit(":function:", 1)[-1].split(":", maxsplit=1)[0]
        functions = self.functions()
        if name not in functions:
            raise KeyError(name)
        return functions[name]

    def glue_jobs(self) -> dict[str, GlueJob]:
        return {job.name: job for stack in self.stacks for job in stack.glue_jobs().values()}

    def principal_of_arn(self, arn: str) -> str | None:
        for stack in self.stacks:
            role = stack.role_of_arn(arn)
            if role is not None:
                return stack.principal(role)
        return None

    def asset(self, s3_url: str) -> Path:
        for stack in self.stacks:
            try:
                return stack.asset(s3_url)
            except FileNotFoundError:
                continue
        raise FileNotFoundError(f"no deployed stack has the asset {s3_url}")
