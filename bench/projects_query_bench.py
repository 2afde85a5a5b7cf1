"""Projects query bench: 100 000 projects over 1 000 users in PostgreSQL (keel_bench_projects).

Seeds the database (dropped and recreated), prints the EXPLAIN ANALYZE plans of the list and
search queries exactly as keel.projects.repository builds them, then times the list query as
the service runs it on a cache miss (set the RLS actor, page query, count) and prints p50/p95.

    .venv/bin/python bench/projects_query_bench.py [--samples 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import uuid

from sqlalchemy import Select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from keel import migrations
from keel.platform.actor import SYSTEM_ACTOR_ID
from keel.platform.db import set_rls_actor
from keel.projects import repository
from keel.projects.repository import ListFilters

ADMIN_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/keel_bench_projects"
USERS = 1_000
PROJECTS = 100_000


async def recreate() -> None:
    engine = create_async_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text("DROP DATABASE IF EXISTS keel_bench_projects WITH (FORCE)"))
        await conn.execute(text("CREATE DATABASE keel_bench_projects"))
    await engine.dispose()


async def seed(sessions: async_sessionmaker[AsyncSession]) -> list[uuid.UUID]:
    async with sessions() as session, session.begin():
        await set_rls_actor(session, user_id=SYSTEM_ACTOR_ID, role="system")
        await session.execute(
            text(
                """
                INSERT INTO users (id, email, password_hash, name, role, is_active,
                                   created_at, updated_at)
                SELECT gen_random_uuid(), 'bench' || g || '@example.com', 'x', 'Bench ' || g,
                       'user', true, now(), now()
                FROM generate_series(1, :users) AS g
                """
            ),
            {"users": USERS},
        )
        words = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima"
        await session.execute(
            text(
                """
                WITH u AS (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM users),
                     w AS (SELECT string_to_array(:words, ' ') AS a)
                INSERT INTO projects (id, user_id, name, description, status, version,
                                      created_at, updated_at, search_name, search_description)
                SELECT gen_random_uuid(), u.id, p.name, p.descr,
                       (ARRAY['active','completed','archived'])[1 + g % 3], 1,
                       now() - g * interval '37 seconds', now() - g * interval '11 seconds',
                       lower(p.name), lower(p.descr)
                FROM generate_series(0, :projects - 1) AS g
                JOIN u ON u.n = g % :users
                CROSS JOIN w
                CROSS JOIN LATERAL (
                    SELECT initcap(w.a[1 + g % 12]) || ' ' || w.a[1 + (g / 12) % 12] || ' ' || g
                               AS name,
                           'Plan for ' || w.a[1 + (g / 7) % 12] || ' and '
                               || w.a[1 + (g / 5) % 12] || ', ticket ' || md5(g::text) AS descr
                ) AS p
                """
            ),
            {"projects": PROJECTS, "users": USERS, "words": words},
        )
        ids = list((await session.execute(text("SELECT id FROM users"))).scalars())
    autocommit = create_async_engine(URL, isolation_level="AUTOCOMMIT")
    async with autocommit.connect() as conn:
        await conn.execute(text("VACUUM ANALYZE projects"))
        await conn.execute(text("VACUUM ANALYZE users"))
    await autocommit.dispose()
    return ids


async def explain(session: AsyncSession, title: str, statement: Select[object]) -> None:
    compiled = statement.compile(
        dialect=session.get_bind().dialect, compile_kwargs={"literal_binds": True}
    )
    sql = str(compiled).replace(":", "\\:")
    rows = await session.execute(text("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql))
    print(f"\n--- {title}\n" + "\n".join(row[0] for row in rows))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def main(samples: int) -> None:
    await recreate()
    await asyncio.to_thread(migrations.upgrade, URL)
    engine = create_async_engine(URL, pool_size=4)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    started = time.perf_counter()
    users = await seed(sessions)
    print(f"seeded {PROJECTS} projects over {USERS} users in {time.perf_counter() - started:.1f}s")

    owner = users[0]
    search = f"%{repository.escape_like('foxtrot')}%"
    rare = f"%{repository.escape_like('4242')}%"
    async with sessions() as session, session.begin():
        await set_rls_actor(session, user_id=owner, role="user")
        mine = ListFilters(owner_id=owner)
        await explain(
            session,
            "user list, default sort",
            repository.list_statement(mine, sort="-createdAt", limit=21),
        )
        await explain(session, "user list, count", repository.count_statement(mine))
        await explain(
            session, "user list, by name", repository.list_statement(mine, sort="name", limit=21)
        )
        await explain(
            session,
            "user search q=foxtrot",
            repository.list_statement(
                ListFilters(owner_id=owner, search_pattern=search), sort="-createdAt", limit=21
            ),
        )
        await set_rls_actor(session, user_id=owner, role="admin")
        everyone = ListFilters(owner_id=None)
        await explain(
            session,
            "admin list, default sort",
            repository.list_statement(everyone, sort="-createdAt", limit=21),
        )
        await explain(
            session,
            "admin list, page 500 (offset 9980)",
            repository.list_statement(everyone, sort="-createdAt", limit=21, offset=9980),
        )
        await explain(
            session,
            "admin search q=4242 (rare)",
            repository.list_statement(
                ListFilters(owner_id=None, search_pattern=rare), sort="-createdAt", limit=21
            ),
        )
        await explain(
            session,
            "admin search q=foxtrot (1 in 12)",
            repository.list_statement(
                ListFilters(owner_id=None, search_pattern=search), sort="-createdAt", limit=21
            ),
        )

    async def one_list(user: uuid.UUID) -> float:
        began = time.perf_counter()
        async with sessions() as session, session.begin():
            await set_rls_actor(session, user_id=user, role="user")
            filters = ListFilters(owner_id=user)
            await repository.list_projects(session, filters, sort="-createdAt", limit=21)
            await repository.count_projects(session, filters)
        return (time.perf_counter() - began) * 1000

    rng = random.Random(7)
    for _ in range(100):  # warm the pool and the plan cache
        await one_list(rng.choice(users))
    timings = [await one_list(rng.choice(users)) for _ in range(samples)]
    print(
        f"\nlist query (cache miss: BEGIN, set RLS actor, page of 20, count, COMMIT), "
        f"{samples} sequential samples over random users:\n"
        f"  p50 {statistics.median(timings):.2f} ms   p95 {percentile(timings, 0.95):.2f} ms   "
        f"p99 {percentile(timings, 0.99):.2f} ms"
    )
    await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=2000)
    asyncio.run(main(parser.parse_args().samples))
