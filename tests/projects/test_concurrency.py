"""Concurrent writers: optimistic concurrency holds under real races."""

from __future__ import annotations

import asyncio

import httpx

from tests.conftest import RegisteredUser
from tests.projects.conftest import API, create


async def test_two_patches_with_the_same_if_match_exactly_one_wins(
    client: httpx.AsyncClient, alice: RegisteredUser
) -> None:
    for _round in range(3):
        project = await create(client, alice)
        url = f"{API}/{project['id']}"
        headers = {**alice.headers, "If-Match": '"1"'}
        first, second = await asyncio.gather(
            client.patch(url, json={"name": "Writer one"}, headers=headers),
            client.patch(url, json={"name": "Writer two"}, headers=headers),
        )
        assert sorted([first.status_code, second.status_code]) == [200, 412], (
            first.text,
            second.text,
        )
        winner = first if first.status_code == 200 else second
        final = await client.get(url, headers=alice.headers)
        assert final.json()["name"] == winner.json()["name"]
        assert final.headers["etag"] == '"2"'


async def test_unconditional_concurrent_patches_all_apply(
    client: httpx.AsyncClient, alice: RegisteredUser
) -> None:
    project = await create(client, alice)
    url = f"{API}/{project['id']}"
    responses = await asyncio.gather(
        *(client.patch(url, json={"name": f"Edit {i}"}, headers=alice.headers) for i in range(8))
    )
    assert all(r.status_code == 200 for r in responses)
    assert sorted(r.headers["etag"] for r in responses) == sorted(f'"{v}"' for v in range(2, 10))
