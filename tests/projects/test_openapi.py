"""Every projects endpoint is documented, with its error responses and headers."""

from __future__ import annotations

import httpx
from fastapi.openapi.utils import get_openapi

from keel.projects.routes import router


def test_projects_endpoints_document_errors_and_headers() -> None:
    # The projects router alone: this pins our documentation, not the other features'.
    schema = get_openapi(title="Keel", version="test", routes=router.routes)
    paths = schema["paths"]
    collection, item = paths["/api/v1/projects"], paths["/api/v1/projects/{id}"]
    assert {"400", "401"} <= set(collection["get"]["responses"])
    assert {"201", "400", "401", "422"} <= set(collection["post"]["responses"])
    assert {"Location", "ETag", "Idempotent-Replayed"} <= set(
        collection["post"]["responses"]["201"]["headers"]
    )
    assert {"200", "304", "401", "404"} <= set(item["get"]["responses"])
    for method in ("put", "patch", "delete"):
        assert {"400", "401", "404", "412"} <= set(item[method]["responses"]), method
    params = {p["name"] for p in collection["get"]["parameters"]}
    assert {
        "page",
        "limit",
        "cursor",
        "status",
        "q",
        "createdAfter",
        "createdBefore",
        "sort",
        "userId",
    } <= params
    assert "Idempotency-Key" in {p["name"] for p in collection["post"]["parameters"]}
    assert "If-Match" in {p["name"] for p in item["patch"]["parameters"]}
    page = schema["components"]["schemas"]["ProjectPage"]
    assert set(page["properties"]) == {"data", "pagination"}
    pagination = schema["components"]["schemas"]["Pagination"]["properties"]
    assert set(pagination) == {"page", "limit", "total", "totalPages", "nextCursor"}


async def test_every_list_shares_one_pagination_schema(client: httpx.AsyncClient) -> None:
    # Two schemas with one name broke openapi-python-client ("duplicate models").
    schemas = (await client.get("/openapi.json")).json()["components"]["schemas"]
    assert [name for name in schemas if "Pagination" in name] == ["Pagination"]
    for page in ("ProjectPage", "UserPage", "AuditPage"):
        ref = schemas[page]["properties"]["pagination"]["$ref"]
        assert ref == "#/components/schemas/Pagination"
