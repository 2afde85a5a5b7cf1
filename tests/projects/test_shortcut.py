"""Cached GET /projects/{id} is answered below FastAPI's router (keel.projects.shortcut): with
the same bytes and headers as the route, and only when the route would answer 200 or 304."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from keel.audit.models import AuditEntry
from keel.platform.actor import SYSTEM_ACTOR_ID
from keel.platform.db import set_rls_actor
from keel.platform.errors import ServiceUnavailable
from keel.platform.metrics import REGISTRY
from keel.projects import service, shortcut
from keel.settings import Settings
from tests.conftest import RegisteredUser, register_user, serve
from tests.projects.conftest import API, create

ROUTE = "/api/v1/projects/{id}"
VOLATILE = {"x-request-id", "date", "ratelimit-remaining", "ratelimit-reset"}


@pytest.fixture
def route_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ids the route itself looked up (the shortcut never calls service.get_project)."""
    calls: list[str] = []
    real = service.get_project

    async def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[2])
        return await real(*args, **kwargs)

    monkeypatch.setattr(service, "get_project", counted)
    return calls


def _served(before: float | None) -> float:
    now = REGISTRY.get_sample_value(
        "http_request_duration_seconds_count",
        {"method": "GET", "route": ROUTE, "status_code": "200"},
    )
    return (now or 0.0) - (before or 0.0)


async def test_a_cached_project_is_answered_without_the_route_and_identically(
    client: httpx.AsyncClient, alice: RegisteredUser, route_calls: list[str]
) -> None:
    project = await create(
        client, alice, name="Ünïcode Ωmega 漢字", description="' OR 1=1 -- <b>x</b>"
    )
    url = f"{API}/{project['id']}"
    first = await client.get(url, headers=alice.headers)  # a miss: the route fills the cache
    assert route_calls == [project["id"]]
    before = _served(None)
    second = await client.get(url, headers=alice.headers)
    assert route_calls == [project["id"]], "the cached read went through the route"
    assert _served(before) == 1  # still counted under the route's template
    assert second.status_code == first.status_code == 200
    assert second.content == first.content
    assert second.json() == project
    assert second.headers["etag"] == first.headers["etag"] == '"1"'
    assert {k: v for k, v in second.headers.items() if k not in VOLATILE} == {
        k: v for k, v in first.headers.items() if k not in VOLATILE
    }
    assert second.headers["x-request-id"] != first.headers["x-request-id"]
    assert second.headers["x-content-type-options"] == "nosniff"


async def test_if_none_match_gives_304_from_the_cache(
    client: httpx.AsyncClient, alice: RegisteredUser, route_calls: list[str]
) -> None:
    project = await create(client, alice)
    url = f"{API}/{project['id']}"
    etag = (await client.get(url, headers=alice.headers)).headers["etag"]
    for header in (etag, f"W/{etag}", '"9", ' + etag, "*"):
        response = await client.get(url, headers={**alice.headers, "If-None-Match": header})
        assert response.status_code == 304, header
        assert response.headers["etag"] == etag
        assert response.content == b""
    stale = await client.get(url, headers={**alice.headers, "If-None-Match": '"0"'})
    assert stale.status_code == 200
    assert stale.json()["id"] == project["id"]
    assert len(route_calls) == 1


async def test_a_write_is_seen_at_once(
    client: httpx.AsyncClient, alice: RegisteredUser, route_calls: list[str]
) -> None:
    project = await create(client, alice, name="Before")
    url = f"{API}/{project['id']}"
    await client.get(url, headers=alice.headers)
    await client.get(url, headers=alice.headers)
    changed = await client.patch(url, json={"name": "After"}, headers=alice.headers)
    assert changed.status_code == 200
    response = await client.get(url, headers=alice.headers)
    assert response.json()["name"] == "After"
    assert response.headers["etag"] == '"2"'
    await client.delete(url, headers=alice.headers)
    gone = await client.get(url, headers=alice.headers)
    assert gone.status_code == 404
    assert gone.json()["code"] == "NOT_FOUND"


async def test_another_users_cached_project_is_still_404(
    client: httpx.AsyncClient,
    alice: RegisteredUser,
    bob: RegisteredUser,
    admin: RegisteredUser,
    route_calls: list[str],
) -> None:
    project = await create(client, alice)
    url = f"{API}/{project['id']}"
    await client.get(url, headers=alice.headers)  # cached now
    response = await client.get(url, headers=bob.headers)
    assert response.status_code == 404
    assert response.json()["code"] == "NOT_FOUND"
    assert response.json()["path"] == url
    assert len(route_calls) == 2  # bob's request fell through to the route
    seen_by_admin = await client.get(url, headers=admin.headers)
    assert seen_by_admin.status_code == 200
    assert len(route_calls) == 2  # an admin may see it: answered from the cache


async def test_an_ended_session_gets_401_though_the_project_is_cached(
    client: httpx.AsyncClient, alice: RegisteredUser
) -> None:
    project = await create(client, alice)
    url = f"{API}/{project['id']}"
    assert (await client.get(url, headers=alice.headers)).status_code == 200
    logout = await client.post("/api/v1/auth/logout", json={"refreshToken": alice.refresh_token})
    assert logout.status_code == 204
    response = await client.get(url, headers=alice.headers)
    assert response.status_code == 401
    assert response.json()["code"] in {"UNAUTHORIZED", "INVALID_TOKEN", "SESSION_REVOKED"}


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Basic YWxpY2U6cHc="}, 401),
        ({"Authorization": "Bearer"}, 401),
        ({"Authorization": "Bearer not.a.token"}, 401),
        ({"If-None-Match": '"1"' * 400}, 400),  # over the header's 1024 characters
    ],
)
async def test_what_the_shortcut_does_not_answer_the_route_does(
    client: httpx.AsyncClient,
    alice: RegisteredUser,
    headers: dict[str, str],
    status: int,
) -> None:
    project = await create(client, alice)
    url = f"{API}/{project['id']}"
    assert (await client.get(url, headers=alice.headers)).status_code == 200
    sent = {**alice.headers, **headers} if "If-None-Match" in headers else headers
    response = await client.get(url, headers=sent)
    assert response.status_code == status
    assert response.json()["path"] == url


async def test_a_repeated_authorization_header_goes_to_the_route(
    client: httpx.AsyncClient, alice: RegisteredUser, bob: RegisteredUser, route_calls: list[str]
) -> None:
    project = await create(client, alice)
    url = f"{API}/{project['id']}"
    await client.get(url, headers=alice.headers)
    headers = [("Authorization", alice.headers["Authorization"])]
    headers.append(("Authorization", bob.headers["Authorization"]))
    response = await client.get(url, headers=headers)
    assert len(route_calls) == 2  # not answered by the shortcut
    assert response.status_code in {200, 404}


@pytest.mark.parametrize(
    "raw_id",
    ["not-a-uuid", "' OR 1=1 --", "%F0%9F%92%A3", "0" * 80, "00000000-0000-0000-0000-000000000000"],
)
async def test_odd_ids_get_the_routes_404(
    client: httpx.AsyncClient, alice: RegisteredUser, raw_id: str
) -> None:
    response = await client.get(f"{API}/{raw_id}", headers=alice.headers)
    assert response.status_code == 404
    assert response.json()["code"] == "NOT_FOUND"


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(rate_limit_authenticated="1000/minute")


async def test_cached_reads_are_rate_limited_like_any_other(
    client: httpx.AsyncClient, alice: RegisteredUser, route_calls: list[str]
) -> None:
    project = await create(client, alice)
    url = f"{API}/{project['id']}"
    remaining = []
    for _ in range(3):
        response = await client.get(url, headers=alice.headers)
        assert response.status_code == 200
        remaining.append(int(response.headers["ratelimit-remaining"]))
    assert len(route_calls) == 1
    assert remaining[0] > remaining[1] > remaining[2]


@pytest.fixture
def shortcut_creates(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Creates the shortcut answered: it reads the request context once it starts writing
    (the route reads it through its own dependency)."""
    calls: list[object] = []
    real = shortcut.request_context

    def counted(scope: Any) -> Any:
        calls.append(scope["path"])
        return real(scope)

    monkeypatch.setattr(shortcut, "request_context", counted)
    return calls


async def test_a_plain_create_is_answered_below_the_route_like_the_route(
    client: httpx.AsyncClient, app: FastAPI, alice: RegisteredUser, shortcut_creates: list[object]
) -> None:
    agent = "keel-test/1.0 ünï"  # latin-1 on the wire, as HTTP allows
    headers: dict[str, Any] = {**alice.headers, "User-Agent": agent.encode("latin-1")}
    body = {"name": "Fast path", "description": "' OR 1=1 -- \u202e", "status": "archived"}
    fast = await client.post(API, json=body, headers=headers)
    assert len(shortcut_creates) == 1
    # With an Idempotency-Key the route answers: the same document, the same headers.
    routed = await client.post(API, json=body, headers={**headers, "Idempotency-Key": "r-1"})
    assert len(shortcut_creates) == 1
    assert fast.status_code == routed.status_code == 201
    first, second = fast.json(), routed.json()
    assert {k: v for k, v in first.items() if k not in {"id", "createdAt", "updatedAt"}} == {
        k: v for k, v in second.items() if k not in {"id", "createdAt", "updatedAt"}
    }
    assert fast.headers["location"] == f"{API}/{first['id']}"
    assert fast.headers["etag"] == routed.headers["etag"] == '"1"'
    assert set(fast.headers) == set(routed.headers) - {"idempotent-replayed"}
    # Seen at once by the read and the list, and audited with who sent it.
    assert (await client.get(f"{API}/{first['id']}", headers=alice.headers)).json() == first
    listed = (await client.get(API, headers=alice.headers)).json()["data"]
    assert first["id"] in {p["id"] for p in listed}
    async with app.state.services.database.sessions() as session:
        await set_rls_actor(session, user_id=SYSTEM_ACTOR_ID, role="system")
        entry = (
            await session.execute(select(AuditEntry).where(AuditEntry.target_id == first["id"]))
        ).scalar_one()
    assert (entry.action, entry.actor_id) == ("project.created", uuid.UUID(alice.id))
    assert entry.ip == "203.0.113.10"
    assert entry.request_id == fast.headers["x-request-id"]


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b'{"name": "ab"}', "VALIDATION_ERROR"),
        (b'{"name": 12345}', "VALIDATION_ERROR"),
        (b'{"name": "Fine", "status": "deleted"}', "VALIDATION_ERROR"),
        (b'{"name": "' + b"x" * 5000 + b'"}', "VALIDATION_ERROR"),
        (b'{"name": "Bad \\u0000 byte"}', "VALIDATION_ERROR"),
        (b'["name", "Fine"]', "VALIDATION_ERROR"),
        (b'{"name": "Fine", "description": NaN}', "VALIDATION_ERROR"),
        (b'{"name": "Fine"', "INVALID_JSON"),
        (b"\xff\xfe not utf-8", "INVALID_JSON"),
        (b"", "VALIDATION_ERROR"),
    ],
)
async def test_bodies_the_model_refuses_get_the_routes_400(
    client: httpx.AsyncClient,
    alice: RegisteredUser,
    shortcut_creates: list[object],
    content: bytes,
    code: str,
) -> None:
    response = await client.post(
        API, content=content, headers={**alice.headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert response.json()["code"] in {code, "VALIDATION_ERROR", "INVALID_JSON"}
    assert response.json()["path"] == API
    assert shortcut_creates == []


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer forged.token.value"},
        {"Authorization": "Basic YWxpY2U6cHc="},
    ],
)
async def test_creates_without_a_live_token_get_the_routes_401(
    client: httpx.AsyncClient, shortcut_creates: list[object], headers: dict[str, str]
) -> None:
    response = await client.post(API, json={"name": "Nobody"}, headers=headers)
    assert response.status_code == 401
    assert shortcut_creates == []


async def test_a_create_in_another_content_type_goes_to_the_route(
    client: httpx.AsyncClient, alice: RegisteredUser, shortcut_creates: list[object]
) -> None:
    response = await client.post(
        API, content=b'{"name": "Typed"}', headers={**alice.headers, "Content-Type": "text/plain"}
    )
    assert shortcut_creates == []
    assert response.status_code in {201, 400, 415}
    charset = await client.post(
        API,
        content=b'{"name": "Charset"}',
        headers={**alice.headers, "Content-Type": "application/json; charset=utf-8"},
    )
    assert charset.status_code == 201
    assert shortcut_creates == [API]


async def test_an_unverified_address_may_not_create_when_verification_is_required(
    make_settings: Callable[..., Settings], shortcut_creates: list[object]
) -> None:
    settings = make_settings(require_verified_email=True, rate_limit_enabled=False)
    async with serve(settings) as c:
        user = await register_user(c)
        response = await c.post(API, json={"name": "Blocked"}, headers=user.headers)
    assert response.status_code == 403
    assert response.json()["code"] == "EMAIL_NOT_VERIFIED"
    assert shortcut_creates == []


async def test_an_error_once_the_create_has_begun_is_answered_as_the_route_would(
    client: httpx.AsyncClient,
    alice: RegisteredUser,
    shortcut_creates: list[object],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def unavailable(*_args: Any, **_kwargs: Any) -> Any:
        raise ServiceUnavailable("The database is unavailable; try again shortly")

    monkeypatch.setattr(service, "create_project", unavailable)
    response = await client.post(API, json={"name": "Doomed"}, headers=alice.headers)
    assert shortcut_creates == [API]  # the shortcut had begun: it answers, once
    assert response.status_code == 503
    body = response.json()
    assert body["code"] == "SERVICE_UNAVAILABLE"
    assert body["path"] == API
    assert body["requestId"] == response.headers["x-request-id"]
    assert response.headers["x-content-type-options"] == "nosniff"
