"""GET /api/v4/openapi.json: a valid OpenAPI 3.1 document of exactly what the router serves."""

from __future__ import annotations

import re

import httpx
import pytest
from openapi_spec_validator import validate

pytestmark = pytest.mark.anyio


async def test_openapi_document_is_valid_openapi_3_1(api: httpx.AsyncClient) -> None:
    """The document validates as OpenAPI 3.1 (openapi-spec-validator)."""
    response = await api.get("/v4/openapi.json")
    assert response.headers["content-type"] == "application/json"
    document = response.json()
    assert document["openapi"] == "3.1.0"
    validate(document)


async def test_openapi_describes_exactly_the_endpoint_index(api: httpx.AsyncClient) -> None:
    """The operations under /api/v4 are exactly those GET /api/v4 lists, plus the v1 envelope."""
    document = (await api.get("/v4/openapi.json")).json()
    index = (await api.get("/v4")).json()["data"]
    listed = {
        (entry["method"].lower(), "/api/v4" + re.sub(r"\{(\w+):\w+\}", r"{\1}", entry["path"]).rstrip("/"))
        for entry in index
    }
    described = {(method, path) for path, operations in document["paths"].items() for method in operations}
    assert described == listed | {("post", "/api/v1")}
    names = [operation["operationId"] for operations in document["paths"].values() for operation in operations.values()]
    assert len(names) == len(set(names))


async def test_publish_accepts_every_field_its_schema_names_and_no_other(api: httpx.AsyncClient) -> None:
    """A publish naming every property of the documented schema is published; one more field is 400/108."""
    document = (await api.get("/v4/openapi.json")).json()
    schema = document["paths"]["/api/v4/mqtt/publish"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    examples = {"string": "t", "integer": 0, "boolean": False, "object": {}}
    properties = schema["properties"]
    every_field = {name: p["enum"][0] if "enum" in p else examples[p["type"]] for name, p in properties.items()}
    assert (await api.post("/v4/mqtt/publish", json=every_field)).json() == {"code": 0}
    assert (await api.post("/v4/mqtt/publish", json={**every_field, "colour": "red"})).json()["code"] == 108
