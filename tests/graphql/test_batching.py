"""No N+1: owners and users' projects are batched, so the SQL count does not grow with rows."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import event

from tests.conftest import RegisteredUser, register_user
from tests.graphql.conftest import gql
from tests.projects.conftest import seed

PROJECTS_WITH_OWNERS = """query($first: Int) { projects(first: $first) {
  edges { node { id name owner { id email name } } } } }"""
USERS_WITH_PROJECTS = """query($first: Int) { users(first: $first) {
  edges { node { email projects(first: 3) {
    totalCount edges { node { name owner { id } } } } } } } }"""


@contextmanager
def counted_statements(app: FastAPI) -> Iterator[list[str]]:
    engine = app.state.services.database.primary.sync_engine
    statements: list[str] = []

    def count(*args: Any) -> None:
        statement = str(args[2])
        # Only this request's reads: the realtime relay polls the outbox meanwhile.
        if "FROM projects" in statement or "FROM users" in statement:
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


async def _owners(client: httpx.AsyncClient, count: int) -> list[RegisteredUser]:
    return [await register_user(client, name=f"Owner {i}") for i in range(count)]


async def test_owners_of_100_projects_cost_the_same_queries_as_of_10(
    client: httpx.AsyncClient, admin: RegisteredUser, app: FastAPI
) -> None:
    owners = await _owners(client, 20)
    for owner in owners[:2]:
        await seed(app, owner, 5)
    await gql(client, "{ viewer { id } }", user=admin)  # authentication's cache is warm
    with counted_statements(app) as small:
        body = await gql(client, PROJECTS_WITH_OWNERS, user=admin, variables={"first": 10})
    assert len(body["data"]["projects"]["edges"]) == 10
    for owner in owners[2:]:
        await seed(app, owner, 5)
    with counted_statements(app) as large:
        body = await gql(client, PROJECTS_WITH_OWNERS, user=admin, variables={"first": 100})
    edges = body["data"]["projects"]["edges"]
    assert len(edges) == 100
    assert len({e["node"]["owner"]["id"] for e in edges}) == 20
    assert len(large) == len(small), (small, large)
    assert sum("FROM users" in s for s in large) == 1  # one batch of owners


async def test_users_projects_are_batched(
    client: httpx.AsyncClient, admin: RegisteredUser, app: FastAPI
) -> None:
    owners = await _owners(client, 9)
    for owner in owners:
        await seed(app, owner, 4)
    await gql(client, "{ viewer { id } }", user=admin)  # authentication's cache is warm
    with counted_statements(app) as small:
        body = await gql(client, USERS_WITH_PROJECTS, user=admin, variables={"first": 2})
    assert len(body["data"]["users"]["edges"]) == 2
    with counted_statements(app) as large:
        body = await gql(client, USERS_WITH_PROJECTS, user=admin, variables={"first": 10})
    users = body["data"]["users"]["edges"]
    assert len(users) == 10
    with_projects = [u for u in users if u["node"]["projects"]["totalCount"]]
    assert len(with_projects) == 9
    assert all(len(u["node"]["projects"]["edges"]) == 3 for u in with_projects)
    assert len(large) == len(small), (small, large)
