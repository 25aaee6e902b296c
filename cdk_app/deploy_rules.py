"""Rules AWS applies at deploy or run time, checked on a synthesized cloud assembly (``make check-deploy``).

Each rule reads what ships (the template, its assets) and returns the violations it found as sentences; an empty
list is a pass. Rules that need a policy decision use moto's IAM policy evaluator on the template's statements,
with intrinsic functions rendered as placeholders (``{"Ref": "X"}`` -> ``<X>``, ``GetAtt`` -> ``<X.Arn>``).
"""

from __future__ import annotations

import ast
import json
import re
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.parser import Parser
from pathlib import Path
from typing import Any

from moto.iam.access_control import IAMPolicy, PermissionResult
from packaging.requirements import Requirement

from encore import observability as obs

REGION = re.compile(r"\b(?:us|eu|ap|sa|ca|me|af|il|mx)-(?:gov-)?[a-z]+-\d\b")
# What Glue 5.x's Python environment provides besides the standard library (AWS Glue "Python modules already
# provided"); anything else must ship in --extra-py-files or be named in --additional-python-modules.
GLUE_PROVIDED = frozenset(
    {"pyspark", "py4j", "awsglue", "boto3", "botocore", "s3transfer", "pandas", "numpy", "pyarrow", "scipy"}
)
# What the SageMaker scikit-learn container's Python has for the serving code (SAGEMAKER_SUBMIT_DIRECTORY).
SERVING_PROVIDED = frozenset({"numpy", "scipy", "sklearn", "pandas"})
# What a request-response (not .sync) task answers with: a selector reading anything else fails at run time.
REQUEST_RESPONSE_OUTPUT = {
    "sagemaker:createTrainingJob": {"TrainingJobArn"},
    "glue:startJobRun": {"JobRunId"},
}
VPC_ENI_ACTIONS = ("ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DeleteNetworkInterface")
TOPIC_PUBLISH_KEY_ACTIONS = ("kms:GenerateDataKey", "kms:Decrypt")


# -- reading the assembly --------------------------------------------------------------------------------------


def render(value: Any) -> str:  # noqa: PLR0911 - one return per kind of value
    """A CloudFormation value as one string, intrinsics as placeholders."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    if isinstance(value, list):
        return ",".join(render(v) for v in value)
    if isinstance(value, dict) and len(value) == 1:
        ((fn, arg),) = value.items()
        if fn == "Ref":
            return f"<{arg}>"
        if fn == "Fn::GetAtt":
            return f"<{'.'.join(arg) if isinstance(arg, list) else arg}>"
        if fn == "Fn::Join":
            return str(arg[0]).join(render(p) for p in arg[1])
        if fn == "Fn::Sub":
            text = arg if isinstance(arg, str) else arg[0]
            return re.sub(r"\$\{([^}]+)\}", r"<\1>", text)
        if fn == "Fn::FindInMap":
            return "<" + ".".join(render(a) for a in arg) + ">"
        return f"<{fn}>"
    return json.dumps(value, default=str)


@dataclass
class Assembly:
    """One stack of a cloud assembly: its template and the folder its assets are in."""

    out_dir: Path
    template: dict[str, Any]
    region: str

    @classmethod
    def load(cls, out_dir: Path) -> Assembly:
        manifest = json.loads((out_dir / "manifest.json").read_text())
        stacks = [a for a in manifest["artifacts"].values() if a["type"] == "aws:cloudformation:stack"]
        if len(stacks) != 1:
            raise ValueError(f"{out_dir}: expected one stack, found {len(stacks)}")
        stack = stacks[0]
        region = stack["environment"].rsplit("/", 1)[-1]
        template = json.loads((out_dir / stack["properties"]["templateFile"]).read_text())
        return cls(out_dir, template, region)

    @property
    def resources(self) -> dict[str, Any]:
        return self.template["Resources"]  # type: ignore[no-any-return]

    def of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.resources.items() if v["Type"] == kind}

    def asset(self, url: Any) -> Path:
        """The staged asset behind an S3 location in the template, by its object key in the asset manifest."""
        key = render(url).rsplit("/", 1)[-1]
        for manifest in self.out_dir.glob("*.assets.json"):
            for entry in json.loads(manifest.read_text()).get("files", {}).values():
                keys = {d["objectKey"] for d in entry["destinations"].values()}
                if key in keys:
                    return self.out_dir / str(entry["source"]["path"])
        # A folder or file staged under its name (as tests stage one).
        digest = key.split(".", 1)[0]
        for path in (self.out_dir / f"asset.{key}", self.out_dir / f"asset.{digest}"):
            if path.exists():
                return path
        raise FileNotFoundError(f"no asset for {render(url)} in {self.out_dir}")

    def layer_asset(self, layer_id: str) -> Path:
        content = self.resources[layer_id]["Properties"]["Content"]
        return self.asset(content["S3Key"])

    def statements_of(self, role_id: str) -> list[dict[str, Any]]:
        """Every statement of a role: inline policies and the AWS::IAM::Policy resources attached to it."""
        out = []
        role = self.resources[role_id]["Properties"]
        for policy in role.get("Policies", []):
            out.extend(policy["PolicyDocument"]["Statement"])
        for res in self.of_type("AWS::IAM::Policy").values():
            if {"Ref": role_id} in res["Properties"].get("Roles", []):
                out.extend(res["Properties"]["PolicyDocument"]["Statement"])
        return out

    def allows(self, role_id: str, action: str, resource: str) -> bool:
        policy = Policy([_rendered(s) for s in self.statements_of(role_id)])
        return policy.allows(action, resource)

    def state_machines(self) -> dict[str, dict[str, Any]]:
        """Each state machine's definition, parsed (intrinsics in it rendered as placeholders)."""
        out = {}
        for lid, res in self.of_type("AWS::StepFunctions::StateMachine").items():
            body = res["Properties"]["DefinitionString"]
            out[lid] = json.loads(render(body))
        return out

    def states(self) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """(state machine, state name, state) of every state, in branches too."""
        for machine, definition in self.state_machines().items():
            for name, state in _states(definition):
                yield machine, name, state


class Policy:
    """A role's statements as IAM evaluates them, by moto's evaluator (an explicit deny wins), with actions
    compared case-insensitively as IAM compares them (CDK writes some in camel case: ``sagemaker:describeEndpoint``)."""

    def __init__(self, statements: list[dict[str, Any]]) -> None:
        lowered = []
        for original in statements:
            statement = dict(original)
            for key in ("Action", "NotAction"):
                if key in statement:
                    value = statement[key]
                    statement[key] = [a.lower() for a in value] if isinstance(value, list) else value.lower()
            lowered.append(statement)
        document = {"Version": "2012-10-17", "Statement": lowered}
        self._policy = IAMPolicy({"policy_document": json.dumps(document)})

    def allows(self, action: str, resource: str, context: dict[str, str] | None = None) -> bool:
        result = self._policy.is_action_permitted(action.lower(), resource, None, context)
        return bool(result == PermissionResult.PERMITTED)


def _rendered(statement: dict[str, Any]) -> dict[str, Any]:
    out = dict(statement)
    for key in ("Resource", "NotResource"):
        if key in out:
            values = out[key] if isinstance(out[key], list) else [out[key]]
            out[key] = [render(v) for v in values]
    if "Condition" in out:
        out.pop("Condition")  # conditions narrow a grant; the rules ask whether the grant exists at all
    return out


def _states(definition: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, state in definition["States"].items():
        yield name, state
        for branch in state.get("Branches", []):
            yield from _states(branch)


# -- the rules ----------------------------------------------------------------------------------------------------


def vpc_functions_can_create_network_interfaces(a: Assembly) -> list[str]:
    """Lambda refuses to create a VPC function whose role cannot manage ENIs (and the policy must exist first)."""
    problems = []
    for lid, fn in a.of_type("AWS::Lambda::Function").items():
        props = fn["Properties"]
        if "VpcConfig" not in props:
            continue
        role_id = props["Role"]["Fn::GetAtt"][0]
        managed = " ".join(render(m) for m in a.resources[role_id]["Properties"].get("ManagedPolicyArns", []))
        if "AWSLambdaVPCAccessExecutionRole" in managed:
            continue
        missing = [act for act in VPC_ENI_ACTIONS if not a.allows(role_id, act, "*")]
        if missing:
            problems.append(f"{lid} runs in a VPC but its role {role_id} is not allowed {missing}")
        policies = [
            p
            for p, res in a.of_type("AWS::IAM::Policy").items()
            if {"Ref": role_id} in res["Properties"].get("Roles", [])
        ]
        depends = fn.get("DependsOn", [])
        for policy in policies:
            if policy not in depends:
                problems.append(f"{lid} does not wait for {policy}: Lambda may check the role before it applies")
    return problems


def _shipped_modules(path: Path) -> dict[str, str]:
    """Dotted module name -> source of every Python file in a folder, a zip or a single file."""
    if path.is_dir():
        files = {str(f.relative_to(path)): f.read_text() for f in sorted(path.rglob("*.py"))}
    elif path.suffix == ".zip":
        with zipfile.ZipFile(path) as z:
            files = {n: z.read(n).decode() for n in z.namelist() if n.endswith(".py")}
    else:
        files = {path.name: path.read_text()}
    out = {}
    for name, source in files.items():
        dotted = name[:-3].replace("/", ".")
        out[dotted.removesuffix(".__init__")] = source
    return out


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imported_modules(source: str, package: str = "") -> set[str]:
    """Dotted names a module imports when it runs (``from a import b`` gives ``a`` and ``a.b``; imports under
    ``if TYPE_CHECKING:`` do not run)."""
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if _is_type_checking(child):
                continue
            if isinstance(child, ast.Import):
                names.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parent = package.rsplit(".", child.level - 1)[0] if child.level > 1 else package
                    base = f"{parent}.{base}".strip(".")
                names.add(base)
                names.update(f"{base}.{alias.name}" for alias in child.names)
            visit(child)

    visit(ast.parse(source))
    return names - {"__future__"}


def unresolved_imports(entries: list[str], shipped: dict[str, str], provided: frozenset[str] | set[str]) -> set[str]:
    """What running ``entries`` (modules of ``shipped``) would import and not find: follows the imports through
    the shipped modules; anything else must be the standard library's or ``provided``."""
    known = set(provided) | set(sys.stdlib_module_names)
    shipped_tops = {m.split(".")[0] for m in shipped}
    missing: set[str] = set()
    seen: set[str] = set()
    queue = list(entries)
    while queue:
        module = queue.pop()
        if module in seen:
            continue
        seen.add(module)
        # relative imports resolve against the module's package: itself if it is one (it has submodules)
        package = module if any(m.startswith(module + ".") for m in shipped) else module.rpartition(".")[0]
        for name in imported_modules(shipped[module], package):
            top = name.split(".")[0]
            if top not in shipped_tops:
                if top not in known:
                    missing.add(top)
                continue
            parts = name.split(".")
            for i in range(1, len(parts) + 1):
                prefix = ".".join(parts[:i])
                if prefix in shipped:
                    queue.append(prefix)
                elif i == len(parts) and not _is_attribute(shipped, parts):
                    missing.add(name)
    return missing


def _is_attribute(shipped: dict[str, str], parts: list[str]) -> bool:
    """``from a.b import c`` where ``c`` is a name defined in ``a.b``, not a module."""
    return ".".join(parts[:-1]) in shipped


def _module_of(distribution: str) -> str:
    return re.split(r"[=<>!~\[]", distribution, maxsplit=1)[0].strip().lower().replace("-", "_")


def glue_jobs_import_what_they_ship(a: Assembly) -> list[str]:
    """Every import of a job's script and of its extra Python files resolves in Glue."""
    problems = []
    for lid, job in a.of_type("AWS::Glue::Job").items():
        props = job["Properties"]
        args = props.get("DefaultArguments", {})
        script = a.asset(props["Command"]["ScriptLocation"])
        shipped = {"__main__": script.read_text()}
        for url in render(args.get("--extra-py-files", "")).split(","):
            if url:
                shipped |= _shipped_modules(a.asset(url))
        modules = {_module_of(m) for m in render(args.get("--additional-python-modules", "")).split(",") if m}
        missing = unresolved_imports(["__main__"], shipped, GLUE_PROVIDED | modules)
        if missing:
            problems.append(f"{lid}: {script.name} needs {sorted(missing)}, which neither Glue nor the job ships")
    return problems


def sync_where_the_output_is_read(a: Assembly) -> list[str]:
    """A request-response task answers with an id only; a selector on the job's result needs ``.sync``."""
    problems = []
    for machine, name, state in a.states():
        action = str(state.get("Resource", "")).rsplit(":::", 1)[-1]
        if state.get("Type") != "Task" or action not in REQUEST_RESPONSE_OUTPUT:
            continue
        answered = REQUEST_RESPONSE_OUTPUT[action]
        for path in json.dumps(state.get("ResultSelector", {})).split('"'):
            if path.startswith("$.") and path[2:].split(".")[0] not in answered:
                problems.append(f"{machine} '{name}': {action} without .sync answers {answered}, not {path}")
    return problems


def s3_locations_are_s3_uris(a: Assembly) -> list[str]:
    """SageMaker takes ``s3://`` URIs for training channels and the output path, not HTTPS URLs."""
    problems = []
    for machine, name, state in a.states():
        text = json.dumps(state.get("Parameters", {}))
        for key in ("S3Uri", "S3OutputPath"):
            for value in re.findall(rf'"{key}": "([^"]*)"', text):
                if not value.startswith("s3://"):
                    problems.append(f"{machine} '{name}': {key} is {value}, not an s3:// URI")
    return problems


def no_foreign_region(a: Assembly) -> list[str]:
    """Nothing names a region but the stack's own (region-keyed Mappings aside)."""
    text = json.dumps({k: v for k, v in a.template.items() if k != "Mappings"})
    foreign = sorted(set(REGION.findall(text)) - {a.region})
    problems = [f"the template for {a.region} names {foreign}"] if foreign else []
    for lid, fn in a.of_type("AWS::Lambda::Function").items():
        env = fn["Properties"].get("Environment", {}).get("Variables", {})
        if "ENCORE_REGION" in env and render(env["ENCORE_REGION"]) != a.region:
            problems.append(f"{lid}: ENCORE_REGION is {render(env['ENCORE_REGION'])}")
    for lid, job in a.of_type("AWS::Glue::Job").items():
        config = json.loads(render(job["Properties"]["DefaultArguments"]["--encore_config"]))
        if config.get("region") != a.region:
            problems.append(f"{lid}: --encore_config region is {config.get('region')}")
    return problems


LAMBDA_ENVIRONMENT_BYTES = 4096  # Lambda: all of a function's environment variables together
PLACEHOLDER = re.compile(r"<[^<>]*>")
LONGEST_NAME = 255  # what a value known only at deploy (a bucket name, an ARN, a URL) may take, at most


def lambda_environments_fit(a: Assembly) -> list[str]:
    """Each function's environment variables within Lambda's 4 KB (names and values; a value known only at deploy
    counted at its longest): named filters and promotions travel there, and a stack that passes them all fails
    at creation."""
    problems = []
    for lid, fn in a.of_type("AWS::Lambda::Function").items():
        env = fn["Properties"].get("Environment", {}).get("Variables", {})
        size = sum(len(k) + len(PLACEHOLDER.sub("x" * LONGEST_NAME, render(v)).encode()) for k, v in env.items())
        if size > LAMBDA_ENVIRONMENT_BYTES:
            problems.append(f"{lid}: its environment takes {size} bytes, past Lambda's {LAMBDA_ENVIRONMENT_BYTES}")
    return problems


def _publishers(a: Assembly, topic_id: str) -> Iterator[tuple[str, str]]:
    """(kind, id) of everything that publishes to a topic: roles by policy, and services by their own principal."""
    topic = f"<{topic_id}>"
    for role_id in a.of_type("AWS::IAM::Role"):
        if a.allows(role_id, "sns:Publish", topic):
            yield "role", role_id
    for alarm in a.of_type("AWS::CloudWatch::Alarm").values():
        actions = alarm["Properties"].get("AlarmActions", []) + alarm["Properties"].get("OKActions", [])
        if {"Ref": topic_id} in actions:
            yield "service", "cloudwatch.amazonaws.com"
    for rule in a.of_type("AWS::Events::Rule").values():
        if any(t.get("Arn") == {"Ref": topic_id} for t in rule["Properties"].get("Targets", [])):
            yield "service", "events.amazonaws.com"


def _key_policy_allows(key: dict[str, Any], service: str, action: str) -> bool:
    for st in key["Properties"]["KeyPolicy"]["Statement"]:
        principal = st.get("Principal", {})
        services = principal.get("Service", []) if isinstance(principal, dict) else []
        services = services if isinstance(services, list) else [services]
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        allowed = any(re.fullmatch(a_.replace("*", ".*"), action) for a_ in actions)
        if st["Effect"] == "Allow" and service in [render(s) for s in services] and allowed:
            return True
    return False


def encrypted_topics_can_be_published_to(a: Assembly) -> list[str]:
    """Publishing to an SSE-KMS topic needs kms:GenerateDataKey and kms:Decrypt on its key, for every publisher."""
    problems = []
    for topic_id, topic in a.of_type("AWS::SNS::Topic").items():
        key_ref = topic["Properties"].get("KmsMasterKeyId")
        if key_ref is None:
            continue
        key_id = key_ref["Fn::GetAtt"][0] if "Fn::GetAtt" in key_ref else key_ref["Ref"]
        key_arn = f"<{key_id}.Arn>"
        for kind, who in set(_publishers(a, topic_id)):
            for action in TOPIC_PUBLISH_KEY_ACTIONS:
                ok = (
                    a.allows(who, action, key_arn)
                    if kind == "role"
                    else _key_policy_allows(a.resources[key_id], who, action)
                )
                if not ok:
                    problems.append(f"{who} publishes to {topic_id} but may not {action} on its key {key_id}")
    return problems


def _dashboard_metrics(body: dict[str, Any]) -> Iterator[tuple[str, str, frozenset[str]]]:
    for widget in body.get("widgets", []):
        for row in widget.get("properties", {}).get("metrics", []):
            if row and isinstance(row[0], dict):  # a math expression
                expression = row[0].get("expression", "")
                for schema, name in re.findall(r"SEARCH\('\{([^}]*)\}[^']*MetricName=\"(\w+)\"", expression):
                    namespace, *dims = schema.split(",")
                    yield namespace, name, frozenset(dims)
                continue
            values = [v for v in row if not isinstance(v, dict)]
            if len(values) >= 2:
                yield values[0], values[1], frozenset(values[2::2])


def dashboard_shows_emitted_metrics(a: Assembly) -> list[str]:
    """Graphs and alarms on Encore's own namespace name a metric, with the dimensions, that the code emits."""
    problems = []
    seen = []
    for lid, dash in a.of_type("AWS::CloudWatch::Dashboard").items():
        body = json.loads(render(dash["Properties"]["DashboardBody"]))
        seen += [(lid, *m) for m in _dashboard_metrics(body)]
    for lid, alarm in a.of_type("AWS::CloudWatch::Alarm").items():
        props = alarm["Properties"]
        if "MetricName" in props:
            seen.append(
                (
                    lid,
                    props["Namespace"],
                    props["MetricName"],
                    frozenset(d["Name"] for d in props.get("Dimensions", [])),
                )
            )
    for lid, namespace, name, dims in seen:
        if namespace != obs.NAMESPACE:
            continue
        emitted = obs.EMITTED.get(name)
        if emitted is None:
            problems.append(f"{lid} shows {namespace}/{name}, which no function emits")
        elif frozenset(emitted) != dims:
            problems.append(f"{lid} shows {name} by {sorted(dims)}; it is emitted by {sorted(emitted)}")
    return problems


def _distributions(site: Path) -> dict[str, Any]:
    out = {}
    for info in site.glob("*.dist-info"):
        meta = Parser().parsestr((info / "METADATA").read_text())
        out[meta["Name"].lower().replace("_", "-")] = meta
    return out


def layers_do_not_conflict(a: Assembly) -> list[str]:
    """A function's layers share no file, carry no compiled bytecode and no second AWS SDK, and every
    distribution in them has what it requires."""
    from cdk_app.bundling import RUNTIME_PROVIDED  # noqa: PLC0415 - keeps aws_cdk out of the lighter rules

    problems = []
    runtime = {n.lower() for n in RUNTIME_PROVIDED}
    checked: set[str] = set()
    for lid, fn in a.of_type("AWS::Lambda::Function").items():
        layer_ids = []
        for layer in fn["Properties"].get("Layers", []):
            if isinstance(layer, dict) and "Ref" in layer:
                layer_ids.append(layer["Ref"])
            else:
                problems.append(
                    f"{lid} uses a layer from outside the stack ({render(layer)}): its files cannot be "
                    "checked against the other layers'"
                )
        owner: dict[str, str] = {}
        for layer_id in layer_ids:
            root = a.layer_asset(layer_id)
            for f in root.rglob("*"):
                if f.is_file():
                    rel = str(f.relative_to(root))
                    if rel in owner and owner[rel] != layer_id:
                        problems.append(f"{lid}: {rel} is in both {owner[rel]} and {layer_id}")
                        break
                    owner[rel] = layer_id
            if layer_id in checked:
                continue
            checked.add(layer_id)
            site = root / "python"
            if any(site.rglob("*.pyc")):
                problems.append(f"{layer_id} ships .pyc files compiled by another Python")
            dists = _distributions(site)
            for name in sorted(set(dists) & runtime):
                problems.append(f"{layer_id} ships {name}, which shadows the Lambda runtime's own")
            for name, meta in dists.items():
                for spec in meta.get_all("Requires-Dist") or []:
                    req = Requirement(spec)
                    if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                        continue
                    dep = req.name.lower().replace("_", "-")
                    if dep not in dists and dep not in runtime:
                        problems.append(f"{layer_id}: {name} requires {dep}, which neither it nor the runtime has")
    return problems


def training_source_serves_with_numpy(a: Assembly) -> list[str]:
    """The serving code train.py puts in the artifact imports only what the serving container has."""
    problems = []
    for machine, name, state in a.states():
        submit = state.get("Parameters", {}).get("HyperParameters", {}).get("sagemaker_submit_directory")
        if submit:
            problems += _serving_code_problems(a.asset(submit), state["Parameters"]["HyperParameters"], machine, name)
    return problems


def _serving_code_problems(source: Path, hyperparameters: dict[str, Any], machine: str, name: str) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(source) as tar:
            tar.extractall(tmp, filter="data")
        program = hyperparameters["sagemaker_program"]
        if not (Path(tmp) / program).exists():
            return [f"{machine} '{name}': the source has no {program}"]
        declared = _assignment(Path(tmp) / program, "SERVING_CODE")
        if declared is None:
            return [f"{program} declares no SERVING_CODE (the files it puts in the artifact's code/)"]
        serving = ast.literal_eval(declared)
        problems = []
        if "requirements.txt" in serving:
            problems.append("the artifact's code/ carries requirements.txt: installed at every cold start")
        shipped = {f.removesuffix(".py"): (Path(tmp) / f).read_text() for f in serving if f.endswith(".py")}
        missing = unresolved_imports(["inference"], shipped, SERVING_PROVIDED)
        if missing:
            problems.append(f"the serving code needs {sorted(missing)}, which the serving container lacks")
        return problems


def _assignment(path: Path, name: str) -> str | None:
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return ast.unparse(node.value)
    return None


RULES: tuple[Callable[[Assembly], list[str]], ...] = (
    vpc_functions_can_create_network_interfaces,
    glue_jobs_import_what_they_ship,
    sync_where_the_output_is_read,
    s3_locations_are_s3_uris,
    no_foreign_region,
    lambda_environments_fit,
    encrypted_topics_can_be_published_to,
    dashboard_shows_emitted_metrics,
    layers_do_not_conflict,
    training_source_serves_with_numpy,
)


def check(out_dir: Path) -> dict[str, list[str]]:
    assembly = Assembly.load(out_dir)
    return {rule.__name__: rule(assembly) for rule in RULES}


def main(argv: list[str]) -> int:
    failed = 0
    for out_dir in argv:
        assembly = Assembly.load(Path(out_dir))
        print(f"{out_dir} ({assembly.region}):")
        for rule in RULES:
            problems = rule(assembly)
            failed += bool(problems)
            print(f"  {'ok  ' if not problems else 'FAIL'} {rule.__name__.replace('_', ' ')}")
            for p in problems:
                print(f"         - {p}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
