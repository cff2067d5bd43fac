"""The OpenAPI 3.1 document: served, valid, and complete (operation ids, errors, examples, parameters)."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate

from tests.support import Tenant, create_product

Client = AsyncTestClient[Litestar]
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
PUBLIC_OPERATIONS = {
    "healthLive",
    "healthReady",
    "createTokenWithPassword",
    "reportLeakedTokens",
    "acceptInvitation",
}
THROTTLED_OPERATIONS = {"createTokenWithPassword", "reportLeakedTokens", "acceptInvitation"}
SECRET_OPERATIONS = {"createToken", "rotateToken", "createInvitation"}


@pytest.fixture
async def document(client: Client) -> dict[str, Any]:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/")
    return dict(response.json())


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1")
    validate(document)  # raises on any violation of the OpenAPI 3.1 schema


async def test_the_browsable_ui_is_served(client: Client) -> None:
    for path in ("/schema", "/schema/swagger"):
        response = await client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith("text/html")
        assert "<html" in response.text.lower()
    assert (await client.get("/schema/no-such-page")).status_code == 404


def test_every_operation_has_an_id_a_summary_and_a_success_answer(document: dict[str, Any]) -> None:
    seen = []
    for path, method, operation in operations(document):
        where = f"{method.upper()} {path}"
        assert re.fullmatch(r"[a-z][A-Za-z0-9]+", operation.get("operationId", "")), where
        seen.append(operation["operationId"])
        assert operation.get("summary") or operation.get("description"), where
        assert operation.get("description"), f"{where}: the handler's docstring is its description"
        assert not re.fullmatch(r"[A-Z][A-Za-z]+", operation["summary"]), f"{where}: a generated summary"
        assert any(code.startswith("2") for code in operation["responses"]), where
    assert len(seen) == len(set(seen)), "operationIds are unique"
    assert {"createProduct", "createToken", "listAuditEvents", "createWorkspace"} <= set(seen)


def test_every_success_body_has_an_example(document: dict[str, Any]) -> None:
    for path, method, operation in operations(document):
        for code, response in operation["responses"].items():
            if not code.startswith("2"):
                continue
            for media_type, media in resolve(document, response).get("content", {}).items():
                examples = media.get("examples") or (
                    {"example": {"value": media["example"]}} if "example" in media else {}
                )
                assert examples, f"{method.upper()} {path} {code} {media_type}"


def test_every_path_parameter_is_declared(document: dict[str, Any]) -> None:
    for path, method, operation in operations(document):
        in_template = set(re.findall(r"\{([^}]+)\}", path))
        declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
        assert in_template == declared, f"{method.upper()} {path}"
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path":
                assert parameter["required"] is True
                assert parameter["schema"], parameter


def expected_problems(path: str, method: str, operation: dict[str, Any]) -> set[int]:
    """What each operation must document, from facts about the route, independent of the helper's rules."""
    operation_id = operation["operationId"]
    public = operation_id in PUBLIC_OPERATIONS
    expected = {400}
    if operation_id != "healthLive":
        expected.add(503)
    if not public:
        expected.add(401)
        if not path.startswith("/admin/"):
            expected.add(403)
    if "{" in path:
        expected.add(404)
    if any(p["name"] == "If-Match" for p in operation.get("parameters", [])):
        expected.add(412)
    if "requestBody" in operation:
        expected |= {413, 415, 422}
    if method == "post" and not public and not path.startswith("/admin/"):
        expected |= {409, 422}  # Idempotency-Key in progress, reused
    if operation_id in THROTTLED_OPERATIONS:
        expected.add(429)
    return expected


def test_every_operation_documents_the_problems_it_can_answer(document: dict[str, Any]) -> None:
    problem_schema = document["components"]["schemas"]["Problem"]
    validator = OAS31Validator({**problem_schema, "components": document["components"]})
    if_match_operations = 0
    for path, method, operation in operations(document):
        where = f"{method.upper()} {path}"
        documented = {int(code) for code in operation["responses"] if code[0] in "45"}
        missing = expected_problems(path, method, operation) - documented
        assert not missing, f"{where} does not document {sorted(missing)}"
        if_match_operations += 412 in documented
        for code in documented:
            response = resolve(document, operation["responses"][str(code)])
            media = response["content"]["application/problem+json"]
            assert resolve(document, media["schema"]) == problem_schema, where
            assert "Request-Id" in response["headers"]
            assert media["examples"], f"{where} {code}"
            for example in media["examples"].values():
                validator.validate(example["value"])
                assert example["value"]["status"] == code
                assert example["value"]["type"].startswith("https://tenantry.dev/problems/")
    assert if_match_operations >= 2  # PATCH and DELETE of products at least


def test_answers_that_need_them_document_their_headers(document: dict[str, Any]) -> None:
    for path, method, operation in operations(document):
        where = f"{method.upper()} {path}"
        responses = operation["responses"]
        for code, response in responses.items():
            assert "Request-Id" in resolve(document, response).get("headers", {}), f"{where} {code}"
        if "201" in responses:
            assert "Location" in responses["201"]["headers"], where
        if "401" in responses:
            assert "WWW-Authenticate" in resolve(document, responses["401"])["headers"]
        for code in ("429", "503"):
            if code in responses:
                assert "Retry-After" in resolve(document, responses[code])["headers"], where


def test_tenant_posts_document_the_idempotency_key(document: dict[str, Any]) -> None:
    tenant_posts = 0
    for path, method, operation in operations(document):
        headers = {p["name"] for p in operation.get("parameters", []) if p["in"] == "header"}
        operation_id = operation["operationId"]
        success = next(r for code, r in operation["responses"].items() if code.startswith("2"))
        if method == "post" and operation_id not in PUBLIC_OPERATIONS and not path.startswith("/admin/"):
            tenant_posts += 1
            assert "Idempotency-Key" in headers, operation_id
            assert "Idempotent-Replayed" in success["headers"], operation_id
        elif operation_id != "createWorkspace":  # the admin surface's own keys
            assert "Idempotency-Key" not in headers, operation_id
        if operation_id in SECRET_OPERATIONS:
            assert "`token` set to null and `replayed: true`" in success["description"], operation_id
    assert tenant_posts >= 8


def test_security_requirements_follow_the_token_kind(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes["tenantToken"]["scheme"] == schemes["adminToken"]["scheme"] == "bearer"
    for path, _, operation in operations(document):
        if operation["operationId"] in PUBLIC_OPERATIONS:
            assert operation["security"] == []
        elif path.startswith("/admin/"):
            assert operation["security"] == [{"adminToken": []}]
        else:
            assert operation["security"] == [{"tenantToken": []}]


async def test_documented_problems_match_real_answers(
    client: Client, tenant_a: Tenant, document: dict[str, Any]
) -> None:
    """Real errors from several operations: each status is documented there, and 401/404 bodies are the examples."""
    product = await create_product(client, tenant_a)
    url = f"/v1/products/{product['id']}"
    by_id = {operation["operationId"]: operation for _, _, operation in operations(document)}
    calls = [
        ("getProduct", await client.get(f"/v1/products/{uuid.uuid4()}", headers=tenant_a.headers)),
        ("getProduct", await client.get(url)),
        ("getProduct", await client.get(url, params={"x": "1"}, headers=tenant_a.headers)),
        ("updateProduct", await client.patch(url, json={"name": "N"}, headers={**tenant_a.headers, "If-Match": '"x"'})),
        ("updateProduct", await client.patch(url, json={"price_cents": "1"}, headers=tenant_a.headers)),
        ("createProduct", await client.post("/v1/products", content="x", headers=tenant_a.headers)),
        ("createProduct", await client.post("/v1/products", json={"sku": product["sku"]}, headers=tenant_a.headers)),
    ]
    statuses = set()
    for operation_id, response in calls:
        statuses.add(response.status_code)
        assert str(response.status_code) in by_id[operation_id]["responses"], (operation_id, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        example_names = resolve(document, by_id[operation_id]["responses"][str(response.status_code)])["content"][
            "application/problem+json"
        ]["examples"]
        assert response.json()["type"] in {e["value"]["type"] for e in example_names.values()}
    assert statuses >= {400, 401, 404, 412, 415, 422}
    not_found = resolve(document, by_id["getProduct"]["responses"]["404"])
    assert calls[0][1].json() == not_found["content"]["application/problem+json"]["examples"]["not-found"]["value"]
    unauthenticated = resolve(document, by_id["getProduct"]["responses"]["401"])
    assert (
        calls[1][1].json()
        == unauthenticated["content"]["application/problem+json"]["examples"]["unauthenticated"]["value"]
    )


def test_the_document_does_not_depend_on_a_request(app: Litestar, document: dict[str, Any]) -> None:
    """The served document is the app's own, completed once (not patched per request)."""
    assert app.openapi_schema.to_schema() == document


def property_names(document: dict[str, Any], node: Any, seen: set[str] | None = None) -> set[str]:
    """Every property name a schema can carry, through references, unions and nesting."""
    seen = set() if seen is None else seen
    names: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            if ref in seen:
                return names
            seen.add(ref)
            return property_names(document, resolve(document, node), seen)
        names |= set(node.get("properties", {}))
        for value in node.values():
            names |= property_names(document, value, seen)
    elif isinstance(node, list):
        for value in node:
            names |= property_names(document, value, seen)
    return names


def test_no_tenant_answer_carries_a_global_user_id(document: dict[str, Any]) -> None:
    """Tenants see membership ids, never the platform-wide user id (docs/04-security-model.md)."""
    tenant = [(path, method, op) for path, method, op in operations(document) if not path.startswith("/admin/")]
    assert any(op["operationId"] == "whoAmI" for _, _, op in tenant)
    for path, method, operation in tenant:
        for status, response in operation["responses"].items():
            if status.startswith("2"):
                names = property_names(document, resolve(document, response))
                assert "user_id" not in names, (method, path)
    who = next(op for _, _, op in tenant if op["operationId"] == "whoAmI")
    assert "member_id" in property_names(document, who["responses"]["200"])
