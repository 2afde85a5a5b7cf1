"""The HTTP platform: error envelope from every layer, request ids, headers, body limits."""

from __future__ import annotations

import re
from datetime import datetime

import httpx
import pytest

from tests.conftest import register_user

ENVELOPE_KEYS = {"error", "code", "details", "timestamp", "path"}


def assert_envelope(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) >= ENVELOPE_KEYS, body
    assert body["code"] == code
    assert isinstance(body["details"], list)
    assert body["timestamp"].endswith("Z")
    datetime.fromisoformat(body["timestamp"].replace("Z", "+00:00"))
    return body


async def test_health_needs_no_dependency(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_reports_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/ready")
    assert response.status_code == 200
    assert response.json()["checks"]["database"] == "ok"


async def test_unknown_route_gets_envelope(client: httpx.AsyncClient) -> None:
    body = assert_envelope(await client.get("/api/v1/nowhere"), 404, "NOT_FOUND")
    assert body["path"] == "/api/v1/nowhere"


async def test_wrong_method_gets_envelope(client: httpx.AsyncClient) -> None:
    assert_envelope(await client.delete("/api/v1/auth/login"), 405, "METHOD_NOT_ALLOWED")


async def test_malformed_json_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/login",
        content=b'{"email": "a@b.c", "password": ',
        headers={"content-type": "application/json"},
    )
    assert_envelope(response, 400, "INVALID_JSON")


async def test_invalid_utf8_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/login",
        content=b'{"email": "\xff\xfe", "password": "x"}',
        headers={"content-type": "application/json"},
    )
    assert_envelope(response, 400, "INVALID_JSON")


async def test_nul_in_body_string_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/register",
        json={"email": "nul@example.com", "password": "pass\u0000word-long", "name": "N"},
    )
    body = assert_envelope(response, 400, "VALIDATION_ERROR")
    assert body["details"] == [{"field": "password", "message": "Must not contain NUL characters"}]


async def test_nul_in_query_is_400(client: httpx.AsyncClient) -> None:
    assert_envelope(await client.get("/health?x=%00"), 400, "BAD_REQUEST")


async def test_validation_details_name_camel_case_fields(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/auth/register", json={"email": "x@example.com"})
    body = assert_envelope(response, 400, "VALIDATION_ERROR")
    fields = {d["field"] for d in body["details"]}  # type: ignore[union-attr,index]
    assert fields == {"password", "name"}


async def test_body_over_limit_with_content_length_is_413(client: httpx.AsyncClient) -> None:
    payload = b'{"email": "' + b"a" * (2 * 1024 * 1024) + b'"}'
    response = await client.post(
        "/api/v1/auth/login", content=payload, headers={"content-type": "application/json"}
    )
    assert_envelope(response, 413, "PAYLOAD_TOO_LARGE")


async def test_body_over_limit_without_content_length_is_413(client: httpx.AsyncClient) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(40):
            yield b"a" * 65536

    response = await client.post(
        "/api/v1/auth/login", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert_envelope(response, 413, "PAYLOAD_TOO_LARGE")


async def test_request_id_is_echoed_when_well_formed(client: httpx.AsyncClient) -> None:
    response = await client.get("/health", headers={"X-Request-ID": "abc.DEF_123-x"})
    assert response.headers["x-request-id"] == "abc.DEF_123-x"


@pytest.mark.parametrize("bad", ["has space", "a" * 129, "semi;colon", "ünï"])
async def test_request_id_is_replaced_when_malformed(client: httpx.AsyncClient, bad: str) -> None:
    response = await client.get("/health", headers={"X-Request-ID": bad.encode()})
    assert response.headers["x-request-id"] != bad
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


async def test_security_headers_on_every_response(client: httpx.AsyncClient) -> None:
    for response in (await client.get("/health"), await client.get("/nope")):
        headers = response.headers
        assert headers["strict-transport-security"].startswith("max-age=")
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"


async def test_docs_page_is_served_offline_without_unsafe_csp(client: httpx.AsyncClient) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200
    assert "/static/swagger-ui-bundle.js" in page.text
    assert "http" not in page.text.replace("http-equiv", "")
    csp = page.headers["content-security-policy"]
    assert "unsafe" not in csp
    assert "'self'" in csp
    script = await client.get("/static/swagger-ui-bundle.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert (await client.get("/static/..%2Fsettings.py")).status_code == 404
    assert (await client.get("/static/LICENSE")).status_code == 404


async def test_openapi_is_3_1(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    assert schema["openapi"].startswith("3.1")
    assert "/api/v1/auth/register" in schema["paths"]


async def test_unhandled_error_is_500_without_leak(client: httpx.AsyncClient) -> None:
    from fastapi import FastAPI

    app: FastAPI = client._transport.app  # type: ignore[attr-defined]

    @app.get("/boom-test")
    async def boom() -> None:
        raise RuntimeError("SELECT secret FROM users -- s3cr3t")

    response = await client.get("/boom-test", headers={"X-Request-ID": "req-500"})
    body = assert_envelope(response, 500, "INTERNAL_ERROR")
    assert "s3cr3t" not in response.text
    assert "SELECT" not in response.text
    assert body["requestId"] == "req-500"
    assert response.headers["x-request-id"] == "req-500"


async def test_register_then_profile_round_trip(client: httpx.AsyncClient) -> None:
    user = await register_user(client, email="Round.Trip@Example.com")
    response = await client.get("/api/v1/auth/profile", headers=user.headers)
    assert response.status_code == 200
    assert response.json()["email"] == "round.trip@example.com"
    assert set(response.json()) == {"id", "email", "name", "role", "emailVerified", "createdAt"}


async def test_pool_timeout_anywhere_is_a_503_with_retry_after(client: httpx.AsyncClient) -> None:
    from fastapi import FastAPI
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    app: FastAPI = client._transport.app  # type: ignore[attr-defined]

    @app.get("/pool-timeout-test")
    async def saturated() -> None:
        raise PoolTimeout("QueuePool limit of size 5 overflow 0 reached")

    response = await client.get("/pool-timeout-test")
    body = assert_envelope(response, 503, "SERVICE_UNAVAILABLE")
    assert response.headers["retry-after"] == "1"
    assert "QueuePool" not in str(body)


def test_driver_loggers_stay_quiet_at_debug() -> None:
    import logging

    from keel.platform.logging import configure_logging

    configure_logging(level="DEBUG", fmt="json")
    try:
        for name in ("aiosqlite", "asyncpg", "sqlalchemy.engine"):
            assert not logging.getLogger(name).isEnabledFor(logging.DEBUG)
    finally:
        configure_logging(level="INFO", fmt="json")
