"""Limits and hostile documents: QUERY_TOO_COMPLEX or a clean 400 before anything runs, never
a 5xx; persisted queries; introspection and GraphiQL by environment; rate limits."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from keel.app import create_app
from keel.settings import ConfigurationError, Settings
from tests.conftest import RegisteredUser, register_user
from tests.graphql.conftest import codes, gql


def _nested(depth: int) -> str:
    # viewer { projects { edges { node { owner { projects { … } } } } } }
    inner = "id"
    for _ in range(depth):
        inner = f"projects(first: 1) {{ edges {{ node {{ owner {{ {inner} }} }} }} }}"
    return f"{{ viewer {{ {inner} }} }}"


async def test_depth_over_ten_is_too_complex(
    client: httpx.AsyncClient, alice: RegisteredUser
) -> None:
    assert "errors" not in await gql(client, _nested(2), user=alice)
    body = await gql(client, _nested(3), user=alice, status=400)
    assert body["data"] is None
    assert "QUERY_TOO_COMPLEX" in codes(body)


async def test_more_than_fifteen_aliases_are_too_complex(
    client: httpx.AsyncClient, alice: RegisteredUser
) -> None:
    fine = " ".join(f"a{i}: viewer {{ id }}" for i in range(15))
    assert "errors" not in await gql(client, f"{{ {fine} }}", user=alice)
    flood = " ".join(f"a{i}: viewer {{ id }}" for i in range(16))
    body = await gql(client, f"{{ {flood} }}", user=alice, status=400)
    assert codes(body) == ["QUERY_TOO_COMPLEX"]


async def test_aliases_hidden_in_reused_fragments_count_every_time(
    client: httpx.AsyncClient, alice: RegisteredUser
) -> None:
    query = """query { viewer { ...F } v2: viewer { ...F } v3: viewer { ...F } }
      fragment F on User { a: id b: id c: id d: id e: id }"""
    body = await gql(client, query, user=alice, status=400)
    assert codes(body) == ["QUERY_TOO_COMPLEX"]


async def test_cost_counts_first_times_the_enclosing_firsts(
    client: httpx.AsyncClient, admin: RegisteredUser
) -> None:
    ok = "{ users(first: 10) { edges { node { projects(first: 50) { totalCount } } } } }"
    assert "errors" not in await gql(client, ok, user=admin)
    over = "{ users(first: 20) { edges { node { projects(first: 50) { totalCount } } } } }"
    body = await gql(client, over, user=admin, status=400)
    assert codes(body) == ["QUERY_TOO_COMPLEX"]
    by_variable = (
        "query($n: Int) { users(first: $n) { edges { node { projects(first: 100) "
        "{ totalCount } } } } }"
    )
    body = await gql(client, by_variable, user=admin, variables={"n": 11}, status=400)
    assert codes(body) == ["QUERY_TOO_COMPLEX"]
    huge = "{ projects(first: 99999999999999) { totalCount } }"
    assert "QUERY_TOO_COMPLEX" in codes(await gql(client, huge, user=admin, status=400))


async def test_more_than_2000_tokens_are_too_complex(
    client: httpx.AsyncClient, alice: RegisteredUser
) -> None:
    query = "{ viewer { " + " ".join(["id"] * 2100) + " } }"
    body = await gql(client, query, user=alice, status=400)
    assert codes(body) == ["QUERY_TOO_COMPLEX"]


@pytest.mark.parametrize(
    "query",
    [
        "{" * 5000,
        "{ viewer { ...A } } fragment A on User { ...B } fragment B on User { ...A }",
        # Fragments spread into each other: exponential if expanded, measured once each.
        "{ viewer { ...F0 } } "
        + " ".join(f"fragment F{i} on User {{ ...F{i + 1} ...F{i + 1} }}" for i in range(40))
        + " fragment F40 on User { a: id }",
        '{ viewer { name(x: "' + "x" * 500_000 + '") } }',
        "query { viewer { id } } query { viewer { id } }",
        "subscription { projectEvents { id } }",
        "{ nope }",
        "",
        "query($id: ID!) { project(id: $id) { id } }",
    ],
    ids=[
        "unclosed-braces",
        "fragment-cycle",
        "fragment-fan-out",
        "huge-string",
        "two-anonymous-operations",
        "subscription-over-http",
        "unknown-field",
        "empty",
        "missing-variable",
    ],
)
async def test_hostile_documents_get_a_clear_400(
    client: httpx.AsyncClient, alice: RegisteredUser, query: str
) -> None:
    response = await client.post("/graphql", json={"query": query}, headers=alice.headers)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["errors"][0]["message"]
    assert body["errors"][0]["extensions"]["code"]
    assert "Traceback" not in response.text


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"{not json", "INVALID_JSON"),
        (b'[{"query": "{ viewer { id } }"}]', "BATCH_NOT_SUPPORTED"),
        (b'"a string"', "BAD_REQUEST"),
        (b'{"query": 7}', "BAD_REQUEST"),
        (b'{"query": "{ viewer { id } }", "variables": []}', "BAD_REQUEST"),
        (b'{"variables": {}}', "BAD_REQUEST"),
    ],
)
async def test_malformed_requests_get_400(
    client: httpx.AsyncClient, alice: RegisteredUser, content: bytes, code: str
) -> None:
    response = await client.post(
        "/graphql",
        content=content,
        headers={**alice.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert codes(response.json()) == [code]


async def test_graphql_response_media_type_on_request(
    client: httpx.AsyncClient, alice: RegisteredUser
) -> None:
    response = await client.post(
        "/graphql",
        json={"query": "{ viewer { id } }"},
        headers={**alice.headers, "Accept": "application/graphql-response+json"},
    )
    assert response.headers["content-type"].startswith("application/graphql-response+json")
    assert (
        response.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    )


async def test_automatic_persisted_queries(
    client: httpx.AsyncClient, alice: RegisteredUser
) -> None:
    query = "{ viewer { id } }"
    digest = hashlib.sha256(query.encode()).hexdigest()
    persisted = {"persistedQuery": {"version": 1, "sha256Hash": digest}}
    miss = await client.post("/graphql", json={"extensions": persisted}, headers=alice.headers)
    assert codes(miss.json()) == ["PERSISTED_QUERY_NOT_FOUND"]
    stored = await gql(client, query, user=alice, extensions=persisted)
    assert stored["data"]["viewer"]["id"] == alice.id
    hit = await client.post("/graphql", json={"extensions": persisted}, headers=alice.headers)
    assert hit.json()["data"]["viewer"]["id"] == alice.id
    wrong = await gql(
        client,
        "{ viewer { email } }",
        user=alice,
        extensions=persisted,
        status=400,
    )
    assert codes(wrong) == ["INVALID_HASH"]
    bad = await client.post(
        "/graphql",
        json={"extensions": {"persistedQuery": {"sha256Hash": "zz"}}},
        headers=alice.headers,
    )
    assert bad.status_code == 400


INTROSPECT = "{ __schema { queryType { name } } }"


async def test_introspection_and_graphiql_in_development(
    client: httpx.AsyncClient, alice: RegisteredUser
) -> None:
    body = await gql(client, INTROSPECT, user=alice)
    assert body["data"]["__schema"]["queryType"]["name"] == "Query"
    page = await client.get("/graphql")
    assert page.status_code == 200
    assert "<script>" not in page.text
    assert "style=" not in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "unsafe" not in csp
    assert "http" not in csp
    for asset in (
        "graphiql.min.js",
        "graphiql.min.css",
        "graphiql-init.js",
        "react.production.min.js",
    ):
        response = await client.get(f"/graphql/static/{asset}")
        assert response.status_code == 200, asset
    assert (await client.get("/graphql/static/LICENSE")).status_code == 404
    assert (await client.get("/graphql/static/..%2Fschema.py")).status_code == 404


@pytest.mark.parametrize("introspection", [None, True])
async def test_introspection_off_in_production_unless_enabled(
    make_settings: Callable[..., Settings], introspection: bool | None
) -> None:
    settings = make_settings(
        env="production",
        allow_sqlite_in_production=True,
        rate_limit_enabled=False,
        graphql_introspection=introspection,
    )
    app = create_app(settings)
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.10", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="https://keel.test") as client:
            user = await register_user(client)
            response = await client.post(
                "/graphql", json={"query": INTROSPECT}, headers=user.headers
            )
            page = await client.get("/graphql")
    if introspection:
        assert response.status_code == 200
        assert page.status_code == 200
    else:
        assert response.status_code == 400
        assert page.status_code == 404


async def test_graphql_requests_count_against_the_rate_limit(
    make_settings: Callable[..., Settings],
) -> None:
    app = create_app(make_settings(rate_limit_anonymous="3/15minutes"))
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.10", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://keel.test") as client:
            statuses = [
                (await client.post("/graphql", json={"query": "{ viewer { id } }"})).status_code
                for _ in range(4)
            ]
            limited = await client.post("/graphql", json={"query": "{ viewer { id } }"})
    assert statuses == [200, 200, 200, 429]
    assert limited.json()["code"] == "RATE_LIMITED"
    assert "retry-after" in limited.headers


# --- trusted documents (production) --------------------------------------------------------

TRUSTED = "{ viewer { id } }"
NOT_LISTED = "{ viewer { email } }"


def _manifest(tmp_path: Path, documents: dict[str, str]) -> Path:
    path = tmp_path / "trusted-documents.json"
    path.write_text(json.dumps(documents))
    return path


def _sha(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


def _production(make_settings: Callable[..., Settings], **overrides: object) -> Settings:
    return make_settings(
        env="production", allow_sqlite_in_production=True, rate_limit_enabled=False, **overrides
    )


async def test_production_runs_only_trusted_documents(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    manifest = _manifest(tmp_path, {_sha(TRUSTED): TRUSTED})
    app = create_app(_production(make_settings, graphql_trusted_documents=manifest))
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.10", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="https://keel.test") as client:
            user = await register_user(client)
            in_full = await gql(client, TRUSTED, user=user)
            assert in_full["data"]["viewer"]["id"] == user.id
            by_hash = await client.post(
                "/graphql",
                json={
                    "extensions": {"persistedQuery": {"version": 1, "sha256Hash": _sha(TRUSTED)}}
                },
                headers=user.headers,
            )
            assert by_hash.status_code == 200
            assert by_hash.json()["data"]["viewer"]["id"] == user.id
            refusals: list[tuple[str | None, str | None]] = [
                (NOT_LISTED, None),  # not listed
                (NOT_LISTED, _sha(NOT_LISTED)),  # registering it as an APQ does not list it
                (None, "0" * 64),  # an unknown hash
                (NOT_LISTED, _sha(TRUSTED)),  # a listed hash with another document
            ]
            for query, digest in refusals:
                body: dict[str, object] = {} if query is None else {"query": query}
                if digest is not None:
                    body["extensions"] = {"persistedQuery": {"version": 1, "sha256Hash": digest}}
                refused = await client.post("/graphql", json=body, headers=user.headers)
                assert refused.status_code == 400, (query, digest)
                assert refused.json().get("data") is None
                assert codes(refused.json()) == ["DOCUMENT_NOT_TRUSTED"]
            # Hostile input is refused, never a 5xx (by the parser's own limits first).
            huge = await gql(client, "{" * 100_000, user=user, status=400)
            assert huge["data"] is None
            invalid = await gql(client, "{ nosuchfield }", user=user, status=400)
            assert codes(invalid) == ["DOCUMENT_NOT_TRUSTED"]


async def test_trusted_documents_apply_only_in_production(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    manifest = _manifest(tmp_path, {_sha(TRUSTED): TRUSTED})
    app = create_app(make_settings(rate_limit_enabled=False, graphql_trusted_documents=manifest))
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.10", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://keel.test") as client:
            user = await register_user(client)
            body = await gql(client, NOT_LISTED, user=user)
    assert body["data"]["viewer"]["email"] == user.email


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        json.dumps(["{ viewer { id } }"]),
        json.dumps({"0" * 64: TRUSTED}),  # a key that is not the document's hash
    ],
)
def test_a_broken_trusted_documents_file_stops_startup(
    make_settings: Callable[..., Settings], tmp_path: Path, content: str
) -> None:
    path = tmp_path / "trusted.json"
    path.write_text(content)
    with pytest.raises(ConfigurationError, match="KEEL_GRAPHQL_TRUSTED_DOCUMENTS"):
        create_app(_production(make_settings, graphql_trusted_documents=path))
