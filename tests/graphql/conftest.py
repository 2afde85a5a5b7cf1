"""Fixtures for the GraphQL tests: users, an admin, and a helper that posts an operation."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import RegisteredUser

# The same users as the projects tests, with the limiter off (one test here turns it on).
from tests.projects.conftest import admin, alice, bob, settings

__all__ = ["admin", "alice", "bob", "settings"]

ENDPOINT = "/graphql"


async def gql(
    client: httpx.AsyncClient,
    query: str,
    *,
    user: RegisteredUser | None = None,
    variables: dict[str, Any] | None = None,
    status: int = 200,
    **extra: Any,
) -> dict[str, Any]:
    """POST one operation; assert the HTTP status; return the decoded body."""
    body: dict[str, Any] = {"query": query, **extra}
    if variables is not None:
        body["variables"] = variables
    response = await client.post(ENDPOINT, json=body, headers=user.headers if user else {})
    assert response.status_code == status, response.text
    data: dict[str, Any] = response.json()
    return data


def codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors", [])]


CREATE = """mutation($input: CreateProjectInput!) {
  createProject(input: $input) { id name description status version createdAt updatedAt
                                 owner { id email } } }"""
