"""On PostgreSQL, search uses the trigram indexes rather than scanning the table."""

from __future__ import annotations

import uuid

import pytest
from fastapi import FastAPI
from sqlalchemy import Select, text
from sqlalchemy.ext.asyncio import AsyncSession

from keel.platform.db import set_rls_actor
from keel.projects import repository
from keel.projects.repository import ListFilters
from keel.projects.service import SYSTEM_ACTOR_ID
from tests.conftest import RegisteredUser, is_postgres

pytestmark = pytest.mark.skipif(not is_postgres(), reason="trigram indexes are PostgreSQL's")


async def explain(session: AsyncSession, statement: Select[object]) -> str:
    compiled = statement.compile(
        dialect=session.get_bind().dialect, compile_kwargs={"literal_binds": True}
    )
    rows = await session.execute(text("EXPLAIN " + str(compiled).replace(":", "\\:")))
    return "\n".join(row[0] for row in rows)


async def test_search_on_20000_rows_uses_trigram_index(app: FastAPI, alice: RegisteredUser) -> None:
    async with app.state.database.sessions() as session, session.begin():
        await set_rls_actor(session, user_id=SYSTEM_ACTOR_ID, role="system")
        await session.execute(
            text(
                """
                INSERT INTO projects (id, user_id, name, description, status, version,
                                      created_at, updated_at, search_name, search_description)
                SELECT gen_random_uuid(), :owner, 'Project ' || g,
                       'Notes ' || md5(g::text), 'active', 1,
                       now() - g * interval '1 minute', now() - g * interval '1 minute',
                       'project ' || g, 'notes ' || md5(g::text)
                FROM generate_series(1, 20000) AS g
                """
            ),
            {"owner": uuid.UUID(alice.id)},
        )
        await session.execute(
            text(
                "UPDATE projects SET name = 'Needle', search_name = 'needle' "
                "WHERE id IN (SELECT id FROM projects LIMIT 3)"
            )
        )
    async with app.state.database.sessions() as session, session.begin():
        await session.execute(text("ANALYZE projects"))
    async with app.state.database.sessions() as session, session.begin():
        await set_rls_actor(session, user_id=SYSTEM_ACTOR_ID, role="system")
        pattern = f"%{repository.escape_like('needle')}%"
        for owner in (None, uuid.UUID(alice.id)):
            statement = repository.list_statement(
                ListFilters(owner_id=owner, search_pattern=pattern), sort="-createdAt", limit=21
            )
            plan = await explain(session, statement)
            assert "Seq Scan" not in plan, plan
            assert "ix_projects_search_name_trgm" in plan, plan
            count_plan = await explain(
                session,
                repository.count_statement(ListFilters(owner_id=owner, search_pattern=pattern)),
            )
            assert "Seq Scan" not in count_plan, count_plan
        rows = await repository.list_projects(
            session, ListFilters(owner_id=None, search_pattern=pattern), sort="-createdAt", limit=21
        )
        assert len(rows) == 3
