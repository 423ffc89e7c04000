"""GET /api/v1/openapi.json (DESIGN.md "OpenAPI"): a valid OpenAPI 3.1 document of exactly the
app's /api/v1 routes, generated from the code; served without sign-in and cacheable. The fuzzer
driven by it is tests/web/test_openapi_fuzz.py."""

from __future__ import annotations

from typing import Any

from openapi_spec_validator import validate


def _document(client) -> dict[str, Any]:
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    return response.get_json()


def _operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(path, method) for path, item in document["paths"].items() for method in item}


def test_the_document_is_valid_openapi_3_1(client):
    document = _document(client)
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_it_lists_exactly_the_apps_api_routes(app, client):
    """Every /api/v1 rule of the url map, each method once (HEAD and OPTIONS aside)."""
    expected = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/"):
            path = rule.rule
            for name in rule.arguments:
                path = path.replace(f"<int:{name}>", f"{{{name}}}").replace(f"<{name}>", f"{{{name}}}")
            expected |= {(path, m.lower()) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert _operations(_document(client)) == expected
    assert ("/api/v1/openapi.json", "get") in expected


def test_a_route_without_declarations_still_appears(app, client):
    """A module added tomorrow without @documented: listed, typed path, generic body, errors."""
    app.add_url_rule("/api/v1/probes/<int:probe_id>/poke", "api.poke_probe", lambda probe_id: "", methods=["POST"])
    operation = _document(client)["paths"]["/api/v1/probes/{probe_id}/poke"]["post"]
    validate(_document(client))
    (parameter,) = operation["parameters"]
    assert parameter["in"] == "path" and parameter["schema"] == {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}
    assert operation["requestBody"]["content"]["application/json"]["schema"] == {"type": "object"}
    assert {"200", "400", "403", "404", "409", "422"} <= set(operation["responses"])
    assert operation["x-kefu-undeclared"] is True


def test_declared_schemas_security_and_errors(client):
    document = _document(client)
    paths = document["paths"]
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {**schemes["bearerAuth"], "type": "http", "scheme": "bearer"}
    error = document["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"error", "message", "fields"}

    start = paths["/api/v1/processes/{key}/instances"]["post"]
    assert start["security"] == [{"bearerAuth": []}]
    body = start["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["data"]["type"] == "object"
    assert set(start["responses"]) == {"201", "400", "401", "403", "404", "409", "413", "422"}
    assert start["responses"]["422"] == {"$ref": "#/components/responses/UnprocessableEntity"}
    assert document["components"]["responses"]["UnprocessableEntity"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"}

    token = paths["/api/v1/auth/token"]["post"]
    assert token["security"] == [] and {"401", "429"} <= set(token["responses"])
    tasks = paths["/api/v1/tasks"]["get"]
    items = tasks["responses"]["200"]["content"]["application/json"]["schema"]["properties"]["items"]
    assert items["items"] == {"$ref": "#/components/schemas/Task"}
    assert [p["schema"]["enum"] for p in tasks["parameters"] if p["name"] == "scope"] == [["mine", "group"]]
    instance = paths["/api/v1/instances/{instance_id}"]["get"]
    assert instance["parameters"][0]["schema"] == {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}
    deploy = paths["/api/v1/definitions"]["post"]
    assert "multipart/form-data" in deploy["requestBody"]["content"]
    assert paths["/api/v1/openapi.json"]["get"]["security"] == []


def test_served_without_sign_in_and_cacheable(client, token):
    first = client.get("/api/v1/openapi.json")
    assert first.status_code == 200 and first.headers["ETag"]
    assert "public" in first.headers["Cache-Control"]
    again = client.get("/api/v1/openapi.json", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304
    assert client.get("/api/v1/openapi.json", headers=token("agent1")).get_json() == first.get_json()


def test_answers_conform_to_their_declared_schemas(client, token):
    """A few real answers against the document's schemas (the fuzzer checks many more)."""
    from jsonschema import Draft202012Validator

    from tests.conftest import INTAKE

    document = _document(client)

    def check(path: str, method: str, response) -> None:
        declared = document["paths"][path][method]["responses"][str(response.status_code)]
        if "$ref" in declared:
            declared = document["components"]["responses"][declared["$ref"].rsplit("/", 1)[-1]]
        schema = {**declared["content"]["application/json"]["schema"], "components": document["components"]}
        Draft202012Validator(schema).validate(response.get_json())

    started = client.post("/api/v1/processes/complaint/instances", json={"data": INTAKE}, headers=token("agent1"))
    check("/api/v1/processes/{key}/instances", "post", started)
    instance_id = started.get_json()["id"]
    check("/api/v1/instances/{instance_id}", "get",
          client.get(f"/api/v1/instances/{instance_id}", headers=token("agent1")))
    inbox = client.get("/api/v1/tasks?scope=group", headers=token("agent1"))
    check("/api/v1/tasks", "get", inbox)
    task_id = inbox.get_json()["items"][0]["id"]
    check("/api/v1/tasks/{task_id}", "get", client.get(f"/api/v1/tasks/{task_id}", headers=token("agent1")))
    check("/api/v1/tasks/{task_id}/claim", "post",
          client.post(f"/api/v1/tasks/{task_id}/claim", headers=token("agent1")))
    check("/api/v1/tasks/{task_id}/complete", "post",
          client.post(f"/api/v1/tasks/{task_id}/complete", json={"data": {"resolution": 5}}, headers=token("agent1")))
    check("/api/v1/definitions", "get", client.get("/api/v1/definitions", headers=token("agent1")))
    check("/api/v1/processes", "get", client.get("/api/v1/processes", headers=token("agent1")))
    check("/api/v1/instances/{instance_id}/migration", "get",
          client.get(f"/api/v1/instances/{instance_id}/migration", headers=token("admin")))


def test_what_the_fuzzer_found_stays_fixed(client, token):
    """Billing months whose year overflows a date were a 500 (dunning) or would be (call details)."""
    for month in ("0000-01", "0001-01", "9999-12"):
        response = client.post("/api/v1/dunning/rounds", json={"month": month}, headers=token("admin"))
        assert response.status_code == 422, (month, response.get_json())
        assert response.get_json()["fields"]["month"]
        response = client.get(f"/api/v1/customers/13800000001?month={month}", headers=token("agent1"))
        assert response.status_code == 400, (month, response.get_json())
