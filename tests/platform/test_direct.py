"""A lone statement sent straight to the driver (keel.platform.direct): the same SQL and
arguments SQLAlchemy sends, SQLAlchemy's exceptions, a broken connection invalidated, the
query metric kept, and the SQLAlchemy path whenever tracing needs its events."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from keel.app import create_app
from keel.platform import db, metrics
from keel.platform.db import Database, RlsActor, insert_rows, utcnow
from keel.platform.direct import DirectStatement, execute_direct
from keel.platform.metrics import REGISTRY
from keel.projects import repository
from keel.settings import Settings
from tests.conftest import is_postgres, register_user
from tests.projects.conftest import project_row
from tests.projects.test_write_path import recording

pytestmark = pytest.mark.skipif(not is_postgres(), reason="the direct path is PostgreSQL's")
NAME = "Direct ünïcode ' OR 1=1 --"


async def test_the_driver_gets_the_sql_and_arguments_sqlalchemy_would_send(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    database: Database = app.state.services.database
    owner = uuid.UUID((await register_user(client, name="Owner")).id)
    project = project_row(owner, name=NAME)
    rows = [
        (repository.projects, project),
        (repository.projects.metadata.tables["events"], _event(owner, project["id"])),
    ]
    through_sqlalchemy: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        through_sqlalchemy.append((statement, parameters))

    event.listen(database.primary.sync_engine, "before_cursor_execute", record)
    try:
        async with database.sessions() as session, session.begin():
            await insert_rows(session, rows, rls=RlsActor(owner, "user"))
            await session.rollback()
    finally:
        event.remove(database.primary.sync_engine, "before_cursor_execute", record)
    ((sql, sent),) = [(s, p) for s, p in through_sqlalchemy if "INSERT INTO" in s]

    straight: list[tuple[str, list[Any]]] = []

    async def spy(connection: Any, statement: DirectStatement, params: Any, **kw: Any) -> None:
        straight.append((statement.sql, statement.arguments(params)))
        await execute_direct(connection, statement, params, **kw)

    db.execute_direct = spy  # type: ignore[assignment]
    try:
        async with database.transaction() as session:
            await insert_rows(session, rows, rls=RlsActor(owner, "user"), alone=True)
    finally:
        db.execute_direct = execute_direct
    assert straight == [(sql, list(sent))]
    async with database.sessions() as session:
        await session.execute(text("SELECT set_config('keel.role', 'admin', false)"))
        stored = (
            await session.execute(
                text("SELECT name, created_at FROM projects WHERE id = :id"),
                {"id": rows[0][1]["id"]},
            )
        ).one()
    assert tuple(stored) == (rows[0][1]["name"], rows[0][1]["created_at"])


def _event(owner: uuid.UUID, project_id: uuid.UUID) -> dict[str, Any]:
    return {
        "position": None,
        "type": "project.created",
        "project_id": project_id,
        "owner_id": owner,
        "payload": {"name": "Direct", "nested": {"ü": [1, 2.5, None]}},
        "created_at": utcnow(),
    }


async def _create_alone(database: Database, owner: uuid.UUID) -> None:
    async with database.transaction() as session:
        await insert_rows(
            session,
            [(repository.projects, project_row(owner, name=NAME))],
            rls=RlsActor(owner, "user"),
            alone=True,
        )


async def test_a_driver_error_is_raised_as_sqlalchemys_exception(app: FastAPI) -> None:
    database: Database = app.state.services.database
    nobody = uuid.uuid4()  # no such user: the foreign key refuses the row
    with pytest.raises(IntegrityError, match="foreign key") as raised:
        await _create_alone(database, nobody)
    assert isinstance(raised.value.orig.__cause__, asyncpg.ForeignKeyViolationError)
    assert not raised.value.connection_invalidated


async def test_a_broken_connection_is_invalidated_and_the_next_write_succeeds(
    make_settings: Callable[..., Settings], client: httpx.AsyncClient
) -> None:
    owner = uuid.UUID((await register_user(client, name="Owner")).id)
    database = Database.from_settings(make_settings(db_ping_idle_seconds=3600, db_pool_size=1))
    try:
        async with database.sessions() as session:
            pid = await session.scalar(text("SELECT pg_backend_pid()"))
        killer = await asyncpg.connect(_plain(database))
        try:
            await killer.execute("SELECT pg_terminate_backend($1)", pid)
        finally:
            await killer.close()
        with pytest.raises(DBAPIError) as raised:
            await _create_alone(database, owner)
        assert raised.value.connection_invalidated
        await _create_alone(database, owner)  # the pool opened a new connection
    finally:
        await database.dispose()


def _plain(database: Database) -> str:
    return database.primary.url.set(drivername="postgresql").render_as_string(hide_password=False)


async def test_the_direct_statement_is_timed_like_the_others(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    user = await register_user(client, name="Timed")
    with recording(app) as sent:
        first = await client.post("/api/v1/projects", json={"name": "One"}, headers=user.headers)
        assert first.status_code == 201
        (sql,) = sent.direct
        operation, table = metrics._classify(sql, frozenset(db.Base.metadata.tables))
        labels = {"operation": operation, "table": table}
        before = REGISTRY.get_sample_value("db_query_duration_seconds_count", labels) or 0
        second = await client.post("/api/v1/projects", json={"name": "Two"}, headers=user.headers)
        assert second.status_code == 201
    after = REGISTRY.get_sample_value("db_query_duration_seconds_count", labels)
    assert after == before + 1


async def test_tracing_keeps_lone_statements_on_sqlalchemys_path(
    app: FastAPI, make_settings: Callable[..., Settings]
) -> None:
    assert app.state.services.database.direct_statements
    assert app.state.services.database.observe_statement is not None
    # The spans themselves: tests/ops/test_tracing.py (a create's SQL spans under its request).
    traced = create_app(make_settings(otel_exporter_otlp_endpoint="http://127.0.0.1:4318"))
    async with LifespanManager(traced, startup_timeout=30, shutdown_timeout=30):
        assert not traced.state.services.database.direct_statements
