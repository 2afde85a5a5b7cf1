"""The write path's round trips: a create is one statement on PostgreSQL (RLS settings,
project, audit row, outbox event), and that statement still enforces row-level security."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from keel.audit import service as audit
from keel.audit.models import AuditEntry
from keel.platform.actor import RequestContext
from keel.platform.db import RlsActor, insert_rows, utcnow
from keel.projects import repository
from keel.realtime.models import Event
from tests.conftest import RegisteredUser, is_postgres
from tests.projects.conftest import API, create
from tests.projects.test_search_plan import role_bypasses_rls
from tests.projects.test_visibility import _grant_probe_role


@contextmanager
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """Every SQL statement the engine sends meanwhile (the relay's too)."""
    sent: list[str] = []

    def record(*args: Any) -> None:
        # Any: the listener's arguments (connection, cursor, statement, ...).
        sent.append(" ".join(str(args[2]).split()))

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


async def test_a_create_writes_its_three_rows_in_one_statement_on_postgresql(
    client: httpx.AsyncClient, app: FastAPI, alice: RegisteredUser
) -> None:
    engine = app.state.services.database.primary
    await create(client, alice)  # warm up: the first request also checks the session
    with statements(engine) as sent:
        project = await create(client, alice, name="Counted", description="one statement")
    inserts = [s for s in sent if s.startswith(("INSERT", "WITH"))]
    rls = [s for s in sent if "set_config('keel." in s]
    if is_postgres():
        assert len(inserts) == 1, inserts
        (statement,) = inserts
        for table in ("projects", "audit_log", "events"):
            assert f"INSERT INTO {table} " in statement
        assert rls == [statement]  # the RLS settings travel in it, not on their own
    else:
        assert [s.split(" (")[0] for s in inserts] == [
            "INSERT INTO projects",
            "INSERT INTO audit_log",
            "INSERT INTO events",
        ]
    async with app.state.services.database.sessions() as session:
        entry = (
            await session.execute(select(AuditEntry).where(AuditEntry.target_id == project["id"]))
        ).scalar_one()
        outbox = (
            await session.execute(select(Event).where(Event.project_id == uuid.UUID(project["id"])))
        ).scalar_one()
    assert (entry.action, entry.actor_id, entry.target_type, entry.outcome) == (
        "project.created",
        uuid.UUID(alice.id),
        "project",
        "success",
    )
    assert entry.details == {}
    assert outbox.type == "project.created"
    assert outbox.payload == {**project, "version": 1}
    assert outbox.owner_id == uuid.UUID(alice.id)


@pytest.mark.skipif(not is_postgres(), reason="row-level security exists on PostgreSQL only")
async def test_the_one_statement_applies_row_level_security_to_its_rows(
    client: httpx.AsyncClient, app: FastAPI, alice: RegisteredUser, bob: RegisteredUser
) -> None:
    await create(client, alice)
    async with app.state.services.database.sessions() as session:
        bypass = await role_bypasses_rls(session)
    if bypass:
        await _grant_probe_role(app)
        async with app.state.services.database.sessions() as session, session.begin():
            await session.execute(text("GRANT INSERT ON projects, audit_log TO keel_rls_probe"))
            await session.execute(
                text("GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO keel_rls_probe")
            )

    async def insert_owned_by(owner: RegisteredUser) -> uuid.UUID:
        now = utcnow()
        project_id = uuid.uuid4()
        values = {
            "id": project_id,
            "user_id": uuid.UUID(owner.id),
            "name": "Direct",
            "description": None,
            "status": "active",
            "version": 1,
            "created_at": now,
            "updated_at": now,
            "search_name": "direct",
            "search_description": None,
        }
        row = audit.entry_row(
            action="project.created",
            context=RequestContext(ip=None, request_id=None, user_agent=None),
            actor_id=uuid.UUID(alice.id),
            target_type="project",
            target_id=project_id,
        )
        async with app.state.services.database.sessions() as session, session.begin():
            if bypass:  # a superuser bypasses RLS; act as a plain role, as production must
                await session.execute(text("SET LOCAL ROLE keel_rls_probe"))
            await insert_rows(
                session,
                [(repository.projects, values), row],
                rls=RlsActor(uuid.UUID(alice.id), "user"),
            )
        return project_id

    # Alice acting for herself: the settings are in place before the policy checks the row.
    mine = await insert_owned_by(alice)
    # Alice writing a row owned by Bob: refused, and the audit row of the statement with it.
    with pytest.raises(DBAPIError, match="row-level security"):
        await insert_owned_by(bob)
    async with app.state.services.database.sessions() as session:
        await session.execute(
            text("SELECT set_config('keel.user_id', :uid, true)"), {"uid": alice.id}
        )
        owned = (
            (
                await session.execute(
                    select(repository.projects.c.id).where(repository.projects.c.name == "Direct")
                )
            )
            .scalars()
            .all()
        )
        audited = (
            (
                await session.execute(
                    select(AuditEntry.target_id).where(
                        AuditEntry.actor_id == uuid.UUID(alice.id),
                        AuditEntry.action == "project.created",
                    )
                )
            )
            .scalars()
            .all()
        )
    assert owned == [mine]
    # The warm-up create's and the direct one's; none for the refused row.
    assert len(audited) == 2
    assert str(mine) in audited


async def test_updates_and_deletes_write_audit_and_event_together(
    client: httpx.AsyncClient, app: FastAPI, alice: RegisteredUser
) -> None:
    project = await create(client, alice)
    url = f"{API}/{project['id']}"
    engine = app.state.services.database.primary
    with statements(engine) as sent:
        changed = await client.patch(url, json={"name": "Renamed"}, headers=alice.headers)
        assert changed.status_code == 200, changed.text
        deleted = await client.delete(url, headers=alice.headers)
        assert deleted.status_code == 204, deleted.text
    writes = [s for s in sent if "INSERT INTO audit_log" in s]
    if is_postgres():
        assert len(writes) == 2, writes
        assert all("INSERT INTO events" in s for s in writes), writes
    async with app.state.services.database.sessions() as session:
        actions = (
            await session.execute(
                select(AuditEntry.action, AuditEntry.details)
                .where(AuditEntry.target_id == project["id"])
                .order_by(AuditEntry.id)
            )
        ).all()
        types = (
            (
                await session.execute(
                    select(Event.type)
                    .where(Event.project_id == uuid.UUID(project["id"]))
                    .order_by(Event.id)
                )
            )
            .scalars()
            .all()
        )
    assert [tuple(a) for a in actions] == [
        ("project.created", {}),
        ("project.updated", {"fields": ["name"]}),
        ("project.deleted", {}),
    ]
    assert types == ["project.created", "project.updated", "project.deleted"]


def _direct_project(owner: RegisteredUser) -> dict[str, Any]:
    now = utcnow()
    return {
        "id": uuid.uuid4(),
        "user_id": uuid.UUID(owner.id),
        "name": "Lone",
        "description": None,
        "status": "active",
        "version": 1,
        "created_at": now,
        "updated_at": now,
        "search_name": "lone",
        "search_description": None,
    }


@contextmanager
def project_inserts_in_autocommit(engine: AsyncEngine) -> Iterator[list[bool]]:
    """For each INSERT INTO projects sent meanwhile: whether it went in autocommit mode."""
    modes: list[bool] = []

    def record(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "INSERT INTO projects" in statement:
            modes.append(bool(conn.connection.dbapi_connection.autocommit))

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield modes
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


@pytest.mark.skipif(not is_postgres(), reason="SQLite keeps its one writer's transactions")
async def test_a_create_is_one_round_trip_without_begin_or_commit(
    client: httpx.AsyncClient, app: FastAPI, alice: RegisteredUser
) -> None:
    engine = app.state.services.database.primary
    await create(client, alice)  # warm up
    with project_inserts_in_autocommit(engine) as modes:
        project = await create(client, alice, name="Alone")
    assert modes == [True], "the create's statement ran inside BEGIN/COMMIT"
    fetched = await client.get(f"{API}/{project['id']}", headers=alice.headers)
    assert fetched.json() == project
    # With an Idempotency-Key the create has statements around it: a real transaction.
    with project_inserts_in_autocommit(engine) as modes:
        keyed = await client.post(
            API, json={"name": "Keyed"}, headers={**alice.headers, "Idempotency-Key": "k-1"}
        )
    assert keyed.status_code == 201
    assert modes == [False]


@pytest.mark.skipif(not is_postgres(), reason="row-level security exists on PostgreSQL only")
async def test_a_lone_statement_keeps_row_level_security_and_refuses_a_second_statement(
    client: httpx.AsyncClient, app: FastAPI, alice: RegisteredUser, bob: RegisteredUser
) -> None:
    database = app.state.services.database
    async with database.sessions() as session:
        if await role_bypasses_rls(session):
            pytest.skip("the test database role bypasses row-level security (CI's does not)")
    as_alice = RlsActor(uuid.UUID(alice.id), "user")
    # Alice writing a row owned by Bob, in autocommit mode: the policy still refuses it.
    with pytest.raises(DBAPIError, match="row-level security"):
        async with database.transaction() as session:
            await insert_rows(
                session, [(repository.projects, _direct_project(bob))], rls=as_alice, alone=True
            )
    mine = _direct_project(alice)
    async with database.transaction() as session:
        await insert_rows(session, [(repository.projects, mine)], rls=as_alice, alone=True)
        with pytest.raises(RuntimeError, match="after insert_rows"):
            await session.execute(text("SELECT 1"))
    # The lone statement had committed itself; nothing of Bob's row exists.
    async with database.sessions() as session:
        await session.execute(text("SELECT set_config('keel.role', 'admin', true)"))
        names = (
            (
                await session.execute(
                    select(repository.projects.c.user_id).where(
                        repository.projects.c.name == "Lone"
                    )
                )
            )
            .scalars()
            .all()
        )
    assert names == [uuid.UUID(alice.id)]
