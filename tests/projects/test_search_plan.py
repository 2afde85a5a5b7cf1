"""On PostgreSQL, search uses the trigram indexes rather than scanning the table."""

from __future__ import annotations

import uuid

import pytest
from fastapi import FastAPI
from sqlalchemy import Select, text
from sqlalchemy.ext.asyncio import AsyncSession

from keel.platform.actor import SYSTEM_ACTOR_ID
from keel.platform.db import set_rls_actor
from keel.projects import repository
from keel.projects.repository import ListFilters
from tests.conftest import RegisteredUser, is_postgres

pytestmark = pytest.mark.skipif(not is_postgres(), reason="trigram indexes are PostgreSQL's")


async def explain(session: AsyncSession, statement: Select[object]) -> str:
    compiled = statement.compile(
        dialect=session.get_bind().dialect, compile_kwargs={"literal_binds": True}
    )
    rows = await session.execute(text("EXPLAIN " + str(compiled).replace(":", "\\:")))
    return "\n".join(row[0] for row in rows)


async def role_bypasses_rls(session: AsyncSession) -> bool:
    row = await session.execute(
        text("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user")
    )
    return bool(row.scalar_one())


async def test_search_on_20000_rows_uses_an_index(
    app: FastAPI, alice: RegisteredUser, bob: RegisteredUser
) -> None:
    """Bob owns 20 000 projects, Alice 3 (all matching "needle").

    A user's search is served by the owner index whether or not RLS applies. An admin-wide
    search uses the trigram index when the database role bypasses RLS; under enforced RLS,
    PostgreSQL refuses to use an index for LIKE (its operator is not LEAKPROOF, so it may not
    run before the policy), and the plan is a scan: that is the documented price of RLS.
    """
    async with app.state.services.database.sessions() as session, session.begin():
        await set_rls_actor(session, user_id=SYSTEM_ACTOR_ID, role="system")
        await session.execute(
            text(
                """
                INSERT INTO projects (id, user_id, name, description, status, version,
                                      created_at, updated_at, search_name, search_description)
                SELECT gen_random_uuid(),
                       CASE WHEN g <= 3 THEN CAST(:alice AS uuid) ELSE CAST(:bob AS uuid) END,
                       CASE WHEN g <= 3 THEN 'Needle ' || g ELSE 'Project ' || g END,
                       'Notes ' || md5(g::text), 'active', 1,
                       now() - g * interval '1 minute', now() - g * interval '1 minute',
                       CASE WHEN g <= 3 THEN 'needle ' || g ELSE 'project ' || g END,
                       'notes ' || md5(g::text)
                FROM generate_series(1, 20003) AS g
                """
            ),
            {"alice": uuid.UUID(alice.id), "bob": uuid.UUID(bob.id)},
        )
    async with app.state.services.database.sessions() as session, session.begin():
        await session.execute(text("ANALYZE projects"))
    async with app.state.services.database.sessions() as session, session.begin():
        bypass = await role_bypasses_rls(session)
        pattern = f"%{repository.escape_like('needle')}%"

        await set_rls_actor(session, user_id=uuid.UUID(alice.id), role="user")
        mine = ListFilters(owner_id=uuid.UUID(alice.id), search_pattern=pattern)
        plan = await explain(session, repository.list_statement(mine, sort="-createdAt", limit=21))
        assert "Seq Scan" not in plan, plan
        count_plan = await explain(session, repository.count_statement(mine))
        assert "Seq Scan" not in count_plan, count_plan
        rows = await repository.list_projects(session, mine, sort="-createdAt", limit=21)
        assert len(rows) == 3

        await set_rls_actor(session, user_id=SYSTEM_ACTOR_ID, role="admin")
        everyone = ListFilters(owner_id=None, search_pattern=pattern)
        plan = await explain(
            session, repository.list_statement(everyone, sort="-createdAt", limit=21)
        )
        if bypass:
            assert "Seq Scan" not in plan, plan
            assert "ix_projects_search_name_trgm" in plan, plan
        rows = await repository.list_projects(session, everyone, sort="-createdAt", limit=21)
        assert len(rows) == 3
