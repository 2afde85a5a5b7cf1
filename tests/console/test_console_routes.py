"""The console's HTTP side: the page, its files, the QR code, and the CSP that guards them."""

from __future__ import annotations

import re

import httpx

from keel.console.routes import STATIC_DIR

CONSOLE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


async def test_console_page_is_served_with_a_self_only_csp(client: httpx.AsyncClient) -> None:
    response = await client.get("/console")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["content-security-policy"] == CONSOLE_CSP
    assert "unsafe" not in response.headers["content-security-policy"]
    assert response.headers["cache-control"] == "no-store"
    assert '<script type="module" src="/console/static/app.js">' in response.text


async def test_console_page_has_no_inline_script_or_style(client: httpx.AsyncClient) -> None:
    html = (await client.get("/console")).text
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert "<style" not in html
    assert " style=" not in html
    for name in STATIC_DIR.glob("*.js"):
        source = name.read_text()
        assert "innerHTML" not in source, name
        assert ".style." not in source, name


async def test_static_files_have_their_types_and_the_console_csp(
    client: httpx.AsyncClient,
) -> None:
    for name, media_type in (
        ("app.js", "text/javascript"),
        ("console.css", "text/css"),
        ("favicon.svg", "image/svg+xml"),
    ):
        response = await client.get(f"/console/static/{name}")
        assert response.status_code == 200, name
        assert response.headers["content-type"].startswith(media_type)
        assert response.headers["content-security-policy"] == CONSOLE_CSP
        assert "max-age" in response.headers["cache-control"]


async def test_unknown_and_escaping_paths_get_the_404_envelope(client: httpx.AsyncClient) -> None:
    for path in (
        "/console/static/nope.js",
        "/console/static/routes.py",
        "/console/static/..%2Froutes.py",
        "/console/static/.hidden",
    ):
        response = await client.get(path)
        assert response.status_code == 404, path
        assert response.json()["code"] == "NOT_FOUND"


async def test_qr_code_of_an_otpauth_uri_is_an_svg(client: httpx.AsyncClient) -> None:
    uri = "otpauth://totp/Keel:ada%40example.com?secret=JBSWY3DPEHPK3PXP&issuer=Keel"
    response = await client.post("/console/qr", json={"text": uri})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("image/svg+xml")
    assert response.text.startswith("<svg")
    assert "<script" not in response.text
    assert " style=" not in response.text


async def test_qr_code_refuses_anything_but_a_short_otpauth_uri(
    client: httpx.AsyncClient,
) -> None:
    for body in (
        {"text": "https://example.com"},
        {"text": "otpauth://" + "a" * 600},
        {"text": "otpauth://x", "extra": 1},
        {},
    ):
        response = await client.post("/console/qr", json=body)
        assert response.status_code == 400, body
        assert response.json()["code"] == "VALIDATION_ERROR"


async def test_console_routes_stay_out_of_the_openapi_schema(client: httpx.AsyncClient) -> None:
    app = client._transport.app  # type: ignore[attr-defined]
    assert not any(path.startswith("/console") for path in app.openapi()["paths"])


async def test_api_responses_keep_the_strict_csp(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    strict = "default-src 'none'; frame-ancestors 'none'"
    assert response.headers["content-security-policy"] == strict
