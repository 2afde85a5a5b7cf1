"""The write path's round trips: a create is one statement on PostgreSQL (RLS settings,
project, audit row, outbox event), and that statement still enforces row-level security."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from keel.audit import service as audit
from keel.audit.models import AuditEntry
from keel.platform import db
from keel.platform.actor import RequestContext
from keel.platform.db import RlsActor, insert_rows
from keel.platform.direct import DirectStatement, execute_direct
from keel.projects import repository
from keel.realtime.models import Event
from tests.conftest import RegisteredUser, is_postgres
from tests.projects.conftest import API, create, project_row
from tests.projects.test_search_plan import role_bypasses_rls
from tests.projects.test_visibility import _grant_probe_role


@dataclass
class Sent:
    """The SQL statements sent meanwhile (the relay's too), and whether each went in
    autocommit mode, through SQLAlchemy or straight to the driver (platform.direct)."""

    statements: list[str] = field(default_factory=list)
    autocommit: list[bool] = field(default_factory=list)
    direct: list[str] = field(default_factory=list)

    def record(self, statement: str, autocommit: bool) -> None:
        self.statements.append(" ".join(statement.split()))
        self.autocommit.append(autocommit)

    def project_inserts(self) -> list[bool]:
        """For each INSERT INTO projects: whether it went in autocommit mode."""
        pairs = zip(self.statements, self.autocommit, strict=True)
        return [mode for sql, mode in pairs if "INSERT INTO projects" in sql]


@contextmanager
def recording(app: FastAPI) -> Iterator[Sent]:
    engine = app.state.services.database.primary
    sent = Sent()

    def through_sqlalchemy(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        # Any: the listener's arguments (DBAPI objects vary by driver).
        sent.record(statement, bool(getattr(conn.connection.dbapi_connection, "autocommit", False)))

    async def straight(
        connection: AsyncConnection, statement: DirectStatement, *args: Any, **kw: Any
    ) -> None:
        raw = await connection.get_raw_connection()
        sent.record(statement.sql, bool(raw.dbapi_connection.autocommit))
        sent.direct.append(statement.sql)
        await execute_direct(connection, statement, *args, **kw)

    db.execute_direct = straight  # type: ignore[assignment]  # a spy: it calls the real one
    event.listen(engine.sync_engine, "before_cursor_execute", through_sqlalchemy)
    try:
        yield sent
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", through_sqlalchemy)
        db.execute_direct = execute_direct


async def test_a_create_writes_its_three_rows_in_one_statement_on_postgresql(
    client: httpx.AsyncClient, app: FastAPI, alice: RegisteredUser
) -> None:
    await create(client, alice)  # warm up: the first request also checks the session
    with recording(app) as sent:
        project = await create(client, alice, name="Counted", description="one statement")
    inserts = [s for s in sent.statements if s.startswith(("INSERT", "WITH"))]
    rls = [s for s in sent.statements if "set_config('keel." in s]
    if is_postgres():
        assert len(inserts) == 1, inserts
        (statement,) = inserts
        assert [" ".join(s.split()) for s in sent.direct] == [statement]  # below SQLAlchemy
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
        values = project_row(uuid.UUID(owner.id), name="Direct")
        project_id: uuid.UUID = values["id"]
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
    with recording(app) as sent:
        changed = await client.patch(url, json={"name": "Renamed"}, headers=alice.headers)
        assert changed.status_code == 200, changed.text
        deleted = await client.delete(url, headers=alice.headers)
        assert deleted.status_code == 204, deleted.text
    writes = [s for s in sent.statements if "INSERT INTO audit_log" in s]
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


@pytest.mark.skipif(not is_postgres(), reason="SQLite keeps its one writer's transactions")
async def test_a_create_is_one_round_trip_without_begin_or_commit(
    client: httpx.AsyncClient, app: FastAPI, alice: RegisteredUser
) -> None:
    await create(client, alice)  # warm up
    with recording(app) as sent:
        project = await create(client, alice, name="Alone")
    assert sent.project_inserts() == [True], "the create's statement ran inside BEGIN/COMMIT"
    fetched = await client.get(f"{API}/{project['id']}", headers=alice.headers)
    assert fetched.json() == project
    # With an Idempotency-Key the create has statements around it: a real transaction.
    with recording(app) as sent:
        keyed = await client.post(
            API, json={"name": "Keyed"}, headers={**alice.headers, "Idempotency-Key": "k-1"}
        )
    assert keyed.status_code == 201
    assert sent.project_inserts() == [False]
    assert sent.direct == []


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
                session,
                [(repository.projects, project_row(uuid.UUID(bob.id)))],
                rls=as_alice,
                alone=True,
            )
    mine = project_row(uuid.UUID(alice.id))
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
