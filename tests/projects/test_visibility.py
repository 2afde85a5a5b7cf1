"""Who sees what: owners, other users and admins; row-level security on PostgreSQL."""

from __future__ import annotations

import uuid

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, text

from keel.platform.db import set_rls_actor
from keel.projects.models import Project
from tests.conftest import RegisteredUser, is_postgres
from tests.platform.test_http import assert_envelope
from tests.projects.conftest import API, create, list_all


async def test_users_see_only_their_own_projects(
    client: httpx.AsyncClient, alice: RegisteredUser, bob: RegisteredUser
) -> None:
    mine = {(await create(client, alice))["id"] for _ in range(3)}
    theirs = await create(client, bob, name="Secret plan", description="bob only")
    listing = await client.get(API, headers=alice.headers)
    assert {p["id"] for p in listing.json()["data"]} == mine
    assert listing.json()["pagination"]["total"] == 3
    assert {p["id"] for p in await list_all(client, alice, q="secret")} == set()
    # Another user's project is indistinguishable from a missing one, for every method.
    url = f"{API}/{theirs['id']}"
    assert_envelope(await client.get(url, headers=alice.headers), 404, "NOT_FOUND")
    assert_envelope(
        await client.patch(url, json={"name": "Hijack"}, headers=alice.headers), 404, "NOT_FOUND"
    )
    assert_envelope(
        await client.put(url, json={"name": "Hijack"}, headers=alice.headers), 404, "NOT_FOUND"
    )
    assert_envelope(
        await client.patch(
            url, json={"name": "Hijack"}, headers={**alice.headers, "If-Match": '"1"'}
        ),
        404,
        "NOT_FOUND",
    )
    assert_envelope(await client.delete(url, headers=alice.headers), 404, "NOT_FOUND")
    assert (await client.get(url, headers=bob.headers)).json() == theirs
    # A user's userId filter cannot widen their view.
    sneaky = await client.get(API, params={"userId": bob.id}, headers=alice.headers)
    assert sneaky.json()["data"] == []
    assert sneaky.json()["pagination"]["total"] == 0
    own = await client.get(API, params={"userId": alice.id}, headers=alice.headers)
    assert own.json()["pagination"]["total"] == 3


async def test_cached_project_is_still_hidden_from_other_users(
    client: httpx.AsyncClient, alice: RegisteredUser, bob: RegisteredUser
) -> None:
    project = await create(client, alice)
    url = f"{API}/{project['id']}"
    assert (await client.get(url, headers=alice.headers)).status_code == 200  # now cached
    assert_envelope(await client.get(url, headers=bob.headers), 404, "NOT_FOUND")


async def test_admin_sees_and_changes_everything(
    client: httpx.AsyncClient,
    alice: RegisteredUser,
    bob: RegisteredUser,
    admin: RegisteredUser,
    app: FastAPI,
) -> None:
    a = await create(client, alice, name="Alpha")
    b = await create(client, bob, name="Bravo")
    everyone = await client.get(API, headers=admin.headers)
    assert {p["id"] for p in everyone.json()["data"]} == {a["id"], b["id"]}
    assert everyone.json()["pagination"]["total"] == 2
    only_bob = await client.get(API, params={"userId": bob.id}, headers=admin.headers)
    assert [p["id"] for p in only_bob.json()["data"]] == [b["id"]]
    nobody = await client.get(API, params={"userId": str(uuid.uuid4())}, headers=admin.headers)
    assert nobody.json()["data"] == []

    url = f"{API}/{b['id']}"
    assert (await client.get(url, headers=admin.headers)).json() == b
    changed = await client.patch(url, json={"status": "completed"}, headers=admin.headers)
    assert changed.status_code == 200
    assert changed.json()["userId"] == bob.id  # ownership does not move to the admin
    assert (await client.get(url, headers=bob.headers)).json()["status"] == "completed"
    assert (await client.delete(url, headers=admin.headers)).status_code == 204
    assert_envelope(await client.get(url, headers=bob.headers), 404, "NOT_FOUND")

    async with app.state.services.database.sessions() as session:
        row = (
            await session.execute(
                text(
                    "SELECT actor_id FROM audit_log WHERE action = 'project.deleted' "
                    "AND target_id = :id"
                ),
                {"id": b["id"]},
            )
        ).one()
        event = (
            await session.execute(
                text("SELECT owner_id FROM events WHERE type = 'project.deleted'")
            )
        ).one()
    assert uuid.UUID(str(row.actor_id)) == uuid.UUID(admin.id)
    assert uuid.UUID(str(event.owner_id)) == uuid.UUID(bob.id)


@pytest.mark.skipif(not is_postgres(), reason="row-level security exists on PostgreSQL only")
async def test_row_level_security_hides_other_owners_rows_from_a_query_without_filter(
    client: httpx.AsyncClient, alice: RegisteredUser, bob: RegisteredUser, app: FastAPI
) -> None:
    mine = {uuid.UUID((await create(client, alice))["id"]) for _ in range(2)}
    await create(client, bob)
    async with app.state.services.database.sessions() as session, session.begin():
        bypass = (
            await session.execute(
                text("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user")
            )
        ).scalar_one()
    if bypass:
        await _grant_probe_role(app)
    async with app.state.services.database.sessions() as session, session.begin():
        if bypass:
            # A superuser bypasses RLS; act as a plain role, as production must connect.
            await session.execute(text("SET LOCAL ROLE keel_rls_probe"))
        # No actor named at all: default deny.
        assert (await session.execute(select(Project.id))).all() == []
        await set_rls_actor(session, user_id=uuid.UUID(alice.id), role="user")
        # The query "forgets" the owner filter; the database applies it anyway.
        visible = set((await session.execute(select(Project.id))).scalars())
        assert visible == mine
        updated = await session.execute(text("UPDATE projects SET name = 'Owned by me'"))
        assert updated.rowcount == 2
        await set_rls_actor(session, user_id=uuid.UUID(alice.id), role="admin")
        assert len((await session.execute(select(Project.id))).all()) == 3
        await session.rollback()


async def _grant_probe_role(app: FastAPI) -> None:
    async with app.state.services.database.sessions() as session, session.begin():
        await session.execute(
            text(
                "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = "
                "'keel_rls_probe') THEN CREATE ROLE keel_rls_probe NOLOGIN NOSUPERUSER "
                "NOBYPASSRLS; END IF; END $$"
            )
        )
        await session.execute(text("GRANT SELECT, UPDATE ON projects TO keel_rls_probe"))
