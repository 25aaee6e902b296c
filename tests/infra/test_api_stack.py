"""The API in the synthesized templates of dev and prod: public documentation, CORS on API Gateway's own
answers, Cognito on the listener routes where the stage asks for it, and acknowledgements that say what is true.

Each stage is the session's synthesis (tests/infra/conftest.py: cdk.json's stage, cdk-nag on, so an
unacknowledged finding fails synthesis).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest
from aws_cdk import aws_apigateway as apigw
from aws_cdk.assertions import Template

from cdk_app.stack import EncoreStack
from encore.config import Stage
from encore.routes import ROUTES

pytestmark = pytest.mark.infra
STAGES: tuple[Stage, ...] = ("dev", "prod")


class Synthesized:
    def __init__(self, stack: EncoreStack) -> None:
        self.config = stack.config
        self.template = Template.from_stack(stack).to_json()
        self.resources: dict[str, Any] = self.template["Resources"]
        # {"/v1/events POST": {"AwsSolutions::AwsSolutions-APIG4": reason, ...}, ...}, from each method's metadata
        self.acknowledged: dict[str, dict[str, str]] = {}
        for node in stack.node.find_all():
            if isinstance(node, apigw.Method) and node.node.default_child is not None:
                rules = self.acknowledged.setdefault(f"{node.resource.path} {node.http_method}", {})
                for entry in node.node.default_child.node.metadata:
                    if entry.type == "aws:cdk:acknowledged-rules":
                        rules.update(cast(dict[str, str], entry.data))

    def of_type(self, kind: str) -> dict[str, Any]:
        return {k: v for k, v in self.resources.items() if v["Type"] == kind}

    def methods(self) -> dict[tuple[str, str], dict[str, Any]]:
        """``{(resource path, HTTP method): method properties}`` for every API Gateway method."""
        parts = {k: v["Properties"] for k, v in self.of_type("AWS::ApiGateway::Resource").items()}

        def path(ref: Any) -> str:
            if not isinstance(ref, dict) or "Ref" not in ref:
                return ""  # the API's root resource
            props = parts[ref["Ref"]]
            return f"{path(props['ParentId'])}/{props['PathPart']}"

        return {
            (path(m["Properties"]["ResourceId"]) or "/", m["Properties"]["HttpMethod"]): m["Properties"]
            for m in self.of_type("AWS::ApiGateway::Method").values()
        }


@pytest.fixture(scope="module")
def synthesized(stacks: dict[str, tuple[EncoreStack, Path]]) -> dict[str, Synthesized]:
    return {stage: Synthesized(stack) for stage, (stack, _) in stacks.items()}


def test_the_documentation_needs_no_key_and_every_data_route_does(synthesized: dict[str, Synthesized]) -> None:
    for stage, synth in synthesized.items():
        methods = synth.methods()
        for path in ("/v1/docs", "/v1/openapi.json", "/v1/health"):
            props = methods[(path, "GET")]
            assert not props.get("ApiKeyRequired"), (stage, path)
            assert props.get("AuthorizationType", "NONE") == "NONE", (stage, path)
        for route in ROUTES:
            for method in route.methods:
                assert bool(methods[(route.path, method)].get("ApiKeyRequired")) == route.api_key, (stage, route)


def test_api_gateways_own_errors_carry_the_cors_origin(synthesized: dict[str, Synthesized]) -> None:
    for stage, synth in synthesized.items():
        origins = synth.config.serving.cors_origins
        assert len(origins) == 1  # both stages allow one origin ("*" by default): a static header
        answers = {r["Properties"]["ResponseType"]: r["Properties"] for r in synth.of_type(
            "AWS::ApiGateway::GatewayResponse").values()}  # fmt: skip
        for kind in ("DEFAULT_4XX", "DEFAULT_5XX"):  # 403 without a key, 429 throttled, 401, 400, 5xx
            headers = answers[kind]["ResponseParameters"]
            assert headers["gatewayresponse.header.Access-Control-Allow-Origin"] == f"'{origins[0]}'", (stage, kind)
        preflight = synth.methods()[("/v1/events", "OPTIONS")]["Integration"]["IntegrationResponses"][0]
        allow = preflight["ResponseParameters"]["method.response.header.Access-Control-Allow-Origin"]
        assert allow == f"'{origins[0]}'", stage  # the preflight reads the same setting


def test_listener_routes_need_a_cognito_token_in_prod_and_have_no_authorizer_in_dev(
    synthesized: dict[str, Synthesized],
) -> None:
    assert synthesized["prod"].config.serving.write_auth == "cognito"
    assert synthesized["dev"].config.serving.write_auth == "none"
    listener = {(r.path, m) for r in ROUTES if r.listener for m in r.methods}
    assert {p for p, _ in listener} == {
        "/v1/events", "/v1/users/{user_id}", "/v1/users/{user_id}/recommendations", "/v1/users/{user_id}/next",
        "/v1/users/{user_id}/rank",
    }  # fmt: skip
    for stage, synth in synthesized.items():
        for (path, method), props in synth.methods().items():
            cognito = props.get("AuthorizationType") == "COGNITO_USER_POOLS"
            expected = stage == "prod" and (path, method) in listener
            assert cognito == expected, (stage, method, path)
            if expected:
                assert props["ApiKeyRequired"] is True and props["AuthorizerId"], (stage, path)
    prod = synthesized["prod"]
    (authorizer,) = prod.of_type("AWS::ApiGateway::Authorizer").values()
    assert authorizer["Properties"]["Type"] == "COGNITO_USER_POOLS"
    (client,) = prod.of_type("AWS::Cognito::UserPoolClient").values()
    assert client["Properties"].get("GenerateSecret") in (None, False)  # a browser app cannot keep a secret
    assert {"UserPoolId", "UserPoolClientId"} <= set(prod.template["Outputs"])  # what the web app is configured with
    assert not synthesized["dev"].of_type("AWS::Cognito::UserPool")


def test_acknowledgements_say_what_is_true_of_each_method(synthesized: dict[str, Synthesized]) -> None:
    for stage, synth in synthesized.items():
        assert synth.acknowledged, stage
        for method, rules in synth.acknowledged.items():
            for rule, reason in rules.items():
                if rule.endswith(("-APIG4", "-COG4")):
                    assert "authenticated by api key" not in reason.lower(), (stage, method, reason)
        for route in ROUTES:
            for method in route.methods:
                rules = synth.acknowledged.get(f"{route.path} {method}", {})
                reasons = {r for rule, r in rules.items() if rule.endswith(("-APIG4", "-COG4"))}
                if route.listener and stage == "prod":
                    assert not reasons, (stage, route.path, method)  # Cognito: nothing to acknowledge
                    continue
                assert len(reasons) == 1, (stage, route.path, method, rules)
                (reason,) = reasons
                if route.listener:  # dev: no authorizer, said plainly, and where prod requires one
                    assert "without an authorizer" in reason and "prod requires a Cognito" in reason
                    assert "write_auth" in reason
                elif route.function == "ops":
                    assert "operational data" in reason and "nothing about a listener" in reason
                elif route.api_key:
                    assert "non-personal catalogue data" in reason and "not authorization" in reason
                else:
                    assert "public by design" in reason
