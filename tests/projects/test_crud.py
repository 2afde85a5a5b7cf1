"""Create, read, replace, patch and delete one project; ETags, preconditions, validation."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from keel.projects.schemas import ProjectOut
from keel.projects.service import PROJECTS
from tests.conftest import RegisteredUser
from tests.platform.test_http import assert_envelope
from tests.projects.conftest import API, count_rows, create


async def test_create_returns_201_with_location_and_etag(
    client: httpx.AsyncClient, alice: RegisteredUser
) -> None:
    response = await client.post(
        API, json={"name": "  Website relaunch  ", "description": "Q3"}, headers=alice.headers
    )
    assert response.status_code == 201, response.text
    body = response.json()
    ProjectOut.model_validate(body)
    assert set(body) == {"id", "userId", "name", "description", "status", "createdAt", "updatedAt"}
    assert body["name"] == "Website relaunch"
    assert body["status"] == "active"
    assert body["userId"] == alice.id
    assert body["createdAt"].endswith("Z")
    assert response.headers["location"] == f"{API}/{body['id']}"
    assert response.headers["etag"] == '"1"'
    fetched = await client.get(response.headers["location"], headers=alice.headers)
    assert fetched.status_code == 200
    assert fetched.json() == body
    assert fetched.headers["etag"] == '"1"'


async def test_unicode_name_is_accepted_and_normalised(
    client: httpx.AsyncClient, alice: RegisteredUser
) -> None:
    # "é" as e + combining accent is normalised to one letter, as typed on another keyboard.
    body = await create(client, alice, name="Cafe\u0301 Zürich-東京 42")
    assert body["name"] == "Café Zürich-東京 42"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "name"),
        ({"name": "ab"}, "name"),
        ({"name": "   ab   "}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "bad_name"}, "name"),
        ({"name": "semi;colon"}, "name"),
        ({"name": "tab\there"}, "name"),
        ({"name": "<script>"}, "name"),
        ({"name": "emoji 🚀 no"}, "name"),
        ({"name": 123}, "name"),
        ({"name": None}, "name"),
        ({"name": ["list"]}, "name"),
        ({"name": "nul\u0000byte"}, "name"),
        ({"name": "Valid", "description": "d" * 1001}, "description"),
        ({"name": "Valid", "description": 5}, "description"),
        ({"name": "Valid", "status": "deleted"}, "status"),
        ({"name": "Valid", "status": "ACTIVE"}, "status"),
        ({"name": "Valid", "userId": str(uuid.uuid4())}, "userId"),
        ({"name": "Valid", "id": str(uuid.uuid4())}, "id"),
    ],
)
async def test_invalid_create_bodies_are_400_with_details(
    client: httpx.AsyncClient, alice: RegisteredUser, payload: dict[str, object], field: str
) -> None:
    response = await client.post(API, json=payload, headers=alice.headers)
    body = assert_envelope(response, 400, "VALIDATION_ERROR")
    assert field in {d["field"] for d in body["details"]}, body


async def test_boundary_lengths_are_accepted(
    client: httpx.AsyncClient, alice: RegisteredUser
) -> None:
    await create(client, alice, name="abc", description="")
    await create(client, alice, name="n" * 100, description="d" * 1000, status="archived")


async def test_non_object_and_malformed_bodies_are_400(
    client: httpx.AsyncClient, alice: RegisteredUser
) -> None:
    assert_envelope(
        await client.post(API, json=[1, 2], headers=alice.headers), 400, "VALIDATION_ERROR"
    )
    response = await client.post(
        API,
        content=b'{"name": "abc"',
        headers={**alice.headers, "content-type": "application/json"},
    )
    assert_envelope(response, 400, "INVALID_JSON")


async def test_requests_without_a_token_are_401(client: httpx.AsyncClient) -> None:
    assert_envelope(await client.get(API), 401, "UNAUTHORIZED")
    assert_envelope(await client.post(API, json={"name": "abc"}), 401, "UNAUTHORIZED")
    assert_envelope(await client.get(f"{API}/{uuid.uuid4()}"), 401, "UNAUTHORIZED")


@pytest.mark.parametrize(
    "raw_id",
    [
        "not-a-uuid",
        "1",
        "00000000-0000-0000-0000-00000000000g",
        "' OR 1=1 --",
        "%00",
        "x" * 5000,
        "..%2F..%2Fetc%2Fpasswd",
        "%F0%9F%9A%80",
    ],
)
async def test_malformed_ids_are_404_never_500(
    client: httpx.AsyncClient, alice: RegisteredUser, raw_id: str
) -> None:
    for method in ("GET", "PUT", "PATCH", "DELETE"):
        response = await client.request(
            method, f"{API}/{raw_id}", json={"name": "Valid"}, headers=alice.headers
        )
        assert response.status_code in (400, 404), (method, response.status_code, response.text)


async def test_unknown_id_is_404(client: httpx.AsyncClient, alice: RegisteredUser) -> None:
    missing = f"{API}/{uuid.uuid4()}"
    assert_envelope(await client.get(missing, headers=alice.headers), 404, "NOT_FOUND")
    assert_envelope(
        await client.patch(missing, json={"name": "Valid"}, headers=alice.headers),
        404,
        "NOT_FOUND",
    )
    assert_envelope(await client.delete(missing, headers=alice.headers), 404, "NOT_FOUND")


async def test_put_replaces_every_field(client: httpx.AsyncClient, alice: RegisteredUser) -> None:
    project = await create(client, alice, name="Original", description="old", status="completed")
    response = await client.put(
        f"{API}/{project['id']}", json={"name": "Replaced"}, headers=alice.headers
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["name"], body["description"], body["status"]) == ("Replaced", None, "active")
    assert body["createdAt"] == project["createdAt"]
    assert body["updatedAt"] >= project["updatedAt"]
    assert response.headers["etag"] == '"2"'
    bad = await client.put(
        f"{API}/{project['id']}", json={"description": "no name"}, headers=alice.headers
    )
    assert_envelope(bad, 400, "VALIDATION_ERROR")


async def test_patch_changes_only_given_fields(
    client: httpx.AsyncClient, alice: RegisteredUser
) -> None:
    project = await create(client, alice, name="Original", description="keep me")
    url = f"{API}/{project['id']}"
    response = await client.patch(url, json={"status": "archived"}, headers=alice.headers)
    assert response.status_code == 200, response.text
    assert response.json()["description"] == "keep me"
    assert response.json()["status"] == "archived"
    cleared = await client.patch(url, json={"description": None}, headers=alice.headers)
    assert cleared.json()["description"] is None
    assert cleared.headers["etag"] == '"3"'
    for payload in ({}, {"name": None}, {"status": None}, {"name": "a"}, {"bogus": 1}):
        assert_envelope(
            await client.patch(url, json=payload, headers=alice.headers), 400, "VALIDATION_ERROR"
        )


async def test_if_match_guards_writes(client: httpx.AsyncClient, alice: RegisteredUser) -> None:
    project = await create(client, alice)
    url = f"{API}/{project['id']}"
    stale = {**alice.headers, "If-Match": '"7"'}
    body = assert_envelope(
        await client.patch(url, json={"name": "Nope"}, headers=stale), 412, "PRECONDITION_FAILED"
    )
    assert body["path"] == url
    assert_envelope(
        await client.put(url, json={"name": "Nope"}, headers=stale), 412, "PRECONDITION_FAILED"
    )
    assert_envelope(await client.delete(url, headers=stale), 412, "PRECONDITION_FAILED")
    # Garbled and weak validators never satisfy If-Match.
    for header in ("garbage", 'W/"1"', '""', "1" * 40):
        response = await client.patch(
            url, json={"name": "Nope"}, headers={**alice.headers, "If-Match": header}
        )
        assert_envelope(response, 412, "PRECONDITION_FAILED")
    ok = await client.patch(
        url, json={"name": "Fresh"}, headers={**alice.headers, "If-Match": '"5", "1"'}
    )
    assert ok.status_code == 200, ok.text
    star = await client.patch(
        url, json={"name": "Star"}, headers={**alice.headers, "If-Match": "*"}
    )
    assert star.status_code == 200
    assert star.headers["etag"] == '"3"'
    deleted = await client.delete(url, headers={**alice.headers, "If-Match": '"3"'})
    assert deleted.status_code == 204
    # On a project that is gone, the answer is 404 whatever the precondition.
    assert_envelope(
        await client.patch(
            url, json={"name": "Late"}, headers={**alice.headers, "If-Match": '"3"'}
        ),
        404,
        "NOT_FOUND",
    )


async def test_if_none_match_gives_304(client: httpx.AsyncClient, alice: RegisteredUser) -> None:
    project = await create(client, alice)
    url = f"{API}/{project['id']}"
    for header in ('"1"', 'W/"1"', '"9", "1"', "*"):
        response = await client.get(url, headers={**alice.headers, "If-None-Match": header})
        assert response.status_code == 304, header
        assert response.headers["etag"] == '"1"'
        assert response.content == b""
    changed = await client.get(url, headers={**alice.headers, "If-None-Match": '"0"'})
    assert changed.status_code == 200
    await client.patch(url, json={"name": "Changed"}, headers=alice.headers)
    after = await client.get(url, headers={**alice.headers, "If-None-Match": '"1"'})
    assert after.status_code == 200
    assert after.json()["name"] == "Changed"
    assert after.headers["etag"] == '"2"'


async def test_delete_is_soft_and_hides_the_project(
    client: httpx.AsyncClient, alice: RegisteredUser, app: FastAPI
) -> None:
    project = await create(client, alice)
    url = f"{API}/{project['id']}"
    response = await client.delete(url, headers=alice.headers)
    assert response.status_code == 204
    assert response.content == b""
    assert_envelope(await client.get(url, headers=alice.headers), 404, "NOT_FOUND")
    assert_envelope(await client.delete(url, headers=alice.headers), 404, "NOT_FOUND")
    listing = await client.get(API, headers=alice.headers)
    assert listing.json()["data"] == []
    assert listing.json()["pagination"]["total"] == 0
    assert await count_rows(app, "projects", "deleted_at IS NOT NULL") == 1


async def test_every_write_appends_audit_and_outbox_rows(
    client: httpx.AsyncClient, alice: RegisteredUser, app: FastAPI
) -> None:
    project = await create(client, alice, name="Audited")
    url = f"{API}/{project['id']}"
    await client.patch(url, json={"status": "completed"}, headers=alice.headers)
    await client.put(url, json={"name": "Audited again"}, headers=alice.headers)
    await client.delete(url, headers=alice.headers)
    async with app.state.services.database.sessions() as session:
        events = (await session.execute(text("SELECT type, payload FROM events ORDER BY id"))).all()
        audit = (
            await session.execute(
                text(
                    "SELECT action, target_type, target_id FROM audit_log "
                    "WHERE target_type = 'project' ORDER BY id"
                )
            )
        ).all()
    assert [e.type for e in events] == [
        "project.created",
        "project.updated",
        "project.updated",
        "project.deleted",
    ]
    payloads = [e.payload if isinstance(e.payload, dict) else json.loads(e.payload) for e in events]
    # Events carry the project as REST shows it, plus its version (for GraphQL and ETags).
    assert payloads[0] == {**project, "version": 1}
    assert [p["version"] for p in payloads] == [1, 2, 3, 4]
    assert payloads[1]["status"] == "completed"
    assert payloads[3]["name"] == "Audited again"
    assert [a.action for a in audit] == [e.type for e in events]
    assert {a.target_id for a in audit} == {project["id"]}


async def test_failed_write_leaves_no_audit_or_outbox_row(
    client: httpx.AsyncClient, alice: RegisteredUser, app: FastAPI
) -> None:
    project = await create(client, alice)
    before = (await count_rows(app, "events"), await count_rows(app, "audit_log"))
    await client.patch(
        f"{API}/{project['id']}",
        json={"name": "Stale"},
        headers={**alice.headers, "If-Match": '"9"'},
    )
    assert (await count_rows(app, "events"), await count_rows(app, "audit_log")) == before


async def test_rolled_back_transaction_leaves_neither_change_nor_rows(
    app: FastAPI, alice: RegisteredUser
) -> None:
    from keel.platform.actor import Actor, RequestContext
    from keel.projects import service
    from keel.projects.schemas import ProjectCreate

    actor = Actor(user_id=uuid.UUID(alice.id), role="user", session_id=uuid.uuid4())
    async with app.state.services.database.sessions() as session:
        transaction = await session.begin()
        await service.create_project(
            session,
            actor,
            ProjectCreate(name="Never"),
            context=RequestContext(),
            runtime=app.state.services.get(PROJECTS),
        )
        await transaction.rollback()
    assert await count_rows(app, "projects") == 0
    assert await count_rows(app, "events") == 0
    assert await count_rows(app, "audit_log", "target_type = 'project'") == 0
