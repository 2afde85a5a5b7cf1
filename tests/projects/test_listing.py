"""Listing: pagination edges, every sort with ties, filters, search, cursors."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.conftest import RegisteredUser
from tests.platform.test_http import assert_envelope
from tests.projects.conftest import API, create, list_all, seed

BASE = datetime(2026, 1, 1, tzinfo=UTC)


async def get_page(client: httpx.AsyncClient, user: RegisteredUser, **params: Any) -> Any:
    response = await client.get(API, params=params, headers=user.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def test_empty_list(client: httpx.AsyncClient, alice: RegisteredUser) -> None:
    body = await get_page(client, alice)
    assert body == {
        "data": [],
        "pagination": {"page": 1, "limit": 20, "total": 0, "totalPages": 0, "nextCursor": None},
    }


async def test_pages_last_page_and_past_the_end(
    client: httpx.AsyncClient, alice: RegisteredUser, app: FastAPI
) -> None:
    ids = await seed(app, alice, 45)
    newest_first = [str(i) for i in reversed(ids)]
    first = await get_page(client, alice)
    assert [p["id"] for p in first["data"]] == newest_first[:20]
    assert first["pagination"] | {"nextCursor": None} == {
        "page": 1,
        "limit": 20,
        "total": 45,
        "totalPages": 3,
        "nextCursor": None,
    }
    assert first["pagination"]["nextCursor"]
    last = await get_page(client, alice, page=3)
    assert [p["id"] for p in last["data"]] == newest_first[40:]
    assert last["pagination"]["total"] == 45
    assert last["pagination"]["nextCursor"] is None
    past = await get_page(client, alice, page=4)
    assert past["data"] == []
    assert past["pagination"] == {
        "page": 4,
        "limit": 20,
        "total": 45,
        "totalPages": 3,
        "nextCursor": None,
    }
    far = await get_page(client, alice, page=1_000_000, limit=100)
    assert far["data"] == []
    assert far["pagination"]["total"] == 45


async def test_exact_multiple_and_limit_100(
    client: httpx.AsyncClient, alice: RegisteredUser, app: FastAPI
) -> None:
    await seed(app, alice, 200)
    second = await get_page(client, alice, page=2, limit=100)
    assert len(second["data"]) == 100
    assert second["pagination"]["totalPages"] == 2
    assert second["pagination"]["nextCursor"] is None
    third = await get_page(client, alice, page=3, limit=100)
    assert third["data"] == []
    assert third["pagination"]["total"] == 200
    one = await get_page(client, alice, limit=1)
    assert len(one["data"]) == 1
    assert one["pagination"]["totalPages"] == 200


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"page": 0}, "page"),
        ({"page": -1}, "page"),
        ({"page": "abc"}, "page"),
        ({"page": "1.5"}, "page"),
        ({"page": 10**30}, "page"),
        ({"page": 1_000_001}, "page"),
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": -5}, "limit"),
        ({"limit": ""}, "limit"),
        ({"sort": "password"}, "sort"),
        ({"sort": "-id; DROP TABLE projects"}, "sort"),
        ({"status": "deleted"}, "status"),
        ({"q": "x" * 201}, "q"),
        ({"createdAfter": "yesterday"}, "createdAfter"),
        ({"createdBefore": "2026-13-01"}, "createdBefore"),
        ({"createdAfter": "2026-02-01", "createdBefore": "2026-01-01"}, "createdBefore"),
        ({"createdAfter": "9999-12-31T23:59:59-14:00"}, "createdAfter"),
        ({"userId": "not-a-uuid"}, "userId"),
        ({"cursor": "x" * 513}, "cursor"),
        ({"cursor": "garbage"}, "cursor"),
        ({"cursor": "a.b.c"}, "cursor"),
        ({"cursor": "!!!.???"}, "cursor"),
    ],
)
async def test_invalid_list_parameters_are_400_with_details(
    client: httpx.AsyncClient, alice: RegisteredUser, params: dict[str, Any], field: str
) -> None:
    response = await client.get(API, params=params, headers=alice.headers)
    body = assert_envelope(response, 400, "VALIDATION_ERROR")
    assert [d["field"] for d in body["details"]] == [field], body


SORT_KEYS = {
    "createdAt": lambda p: p["createdAt"],
    "updatedAt": lambda p: p["updatedAt"],
    "name": lambda p: p["name"],
}


@pytest.mark.parametrize(
    "sort", ["createdAt", "-createdAt", "name", "-name", "updatedAt", "-updatedAt"]
)
async def test_every_sort_is_total_with_ties_on_offset_and_cursor_pages(
    client: httpx.AsyncClient, alice: RegisteredUser, app: FastAPI, sort: str
) -> None:
    # Only three distinct values per sort key: most neighbours tie and need the id tiebreak.
    await seed(
        app,
        alice,
        31,
        name=lambda i: ["Alpha", "Bravo", "Charlie"][i % 3],
        created_at=lambda i: BASE + timedelta(hours=i % 3),
        updated_at=lambda i: BASE + timedelta(days=1, hours=(i * 7) % 3),
    )
    everything = await get_page(client, alice, limit=100)
    key = SORT_KEYS[sort.lstrip("-")]
    expected = sorted(everything["data"], key=lambda p: (key(p), p["id"]))
    if sort.startswith("-"):
        expected.reverse()
    expected_ids = [p["id"] for p in expected]

    offset_ids: list[str] = []
    for page in range(1, 6):
        body = await get_page(client, alice, sort=sort, limit=7, page=page)
        offset_ids.extend(p["id"] for p in body["data"])
    assert offset_ids == expected_ids

    cursor_ids = [p["id"] for p in await list_all(client, alice, sort=sort, limit=7)]
    assert cursor_ids == expected_ids


async def test_cursor_pages_are_not_counted(
    client: httpx.AsyncClient, alice: RegisteredUser, app: FastAPI
) -> None:
    await seed(app, alice, 5)
    first = await get_page(client, alice, limit=2)
    second = await get_page(client, alice, limit=2, cursor=first["pagination"]["nextCursor"])
    assert second["pagination"]["page"] is None
    assert second["pagination"]["total"] is None
    assert second["pagination"]["totalPages"] is None
    assert second["pagination"]["limit"] == 2
    assert second["pagination"]["nextCursor"]
    both = await client.get(
        API,
        params={"cursor": first["pagination"]["nextCursor"], "page": 2},
        headers=alice.headers,
    )
    assert_envelope(both, 400, "VALIDATION_ERROR")


async def test_tampered_or_foreign_cursors_are_rejected(
    client: httpx.AsyncClient, alice: RegisteredUser, app: FastAPI
) -> None:
    await seed(app, alice, 5)
    cursor = (await get_page(client, alice, limit=2))["pagination"]["nextCursor"]
    payload, mac = cursor.split(".")
    flipped = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1]
    for bad in (f"{flipped}.{mac}", f"{payload}.{mac[::-1]}", f"{payload}.", cursor + "x"):
        response = await client.get(API, params={"cursor": bad, "limit": 2}, headers=alice.headers)
        body = assert_envelope(response, 400, "VALIDATION_ERROR")
        assert body["details"][0]["field"] == "cursor"
    for other in ({"sort": "name"}, {"status": "active"}, {"q": "x"}):
        response = await client.get(
            API, params={"cursor": cursor, "limit": 2, **other}, headers=alice.headers
        )
        assert_envelope(response, 400, "VALIDATION_ERROR")
    # A different limit is fine: the cursor marks a position, not a page size.
    assert (
        await client.get(API, params={"cursor": cursor, "limit": 3}, headers=alice.headers)
    ).status_code == 200


async def test_cursor_from_another_server_secret_is_rejected(
    client: httpx.AsyncClient, alice: RegisteredUser, app: FastAPI
) -> None:
    from keel.projects.cursors import CursorCodec

    await seed(app, alice, 3)
    real = (await get_page(client, alice, limit=1))["pagination"]["nextCursor"]
    payload = real.split(".")[0]
    forged = CursorCodec(b"k" * 32).encode(fingerprint="x", value=BASE, row_id=uuid.uuid4())
    for bad in (forged, payload + "." + forged.split(".")[1]):
        response = await client.get(API, params={"cursor": bad, "limit": 1}, headers=alice.headers)
        assert_envelope(response, 400, "VALIDATION_ERROR")


async def test_cursor_is_stable_while_rows_are_inserted_and_deleted(
    client: httpx.AsyncClient, alice: RegisteredUser, app: FastAPI
) -> None:
    original = {str(i) for i in await seed(app, alice, 40)}
    seen: list[str] = []
    deleted: str | None = None
    body = await get_page(client, alice, limit=10)
    seen.extend(p["id"] for p in body["data"])
    inserted: set[str] = set()
    while body["pagination"]["nextCursor"]:
        # Between pages: new projects land at the top, and one not yet seen disappears.
        created = await asyncio.gather(*(create(client, alice) for _ in range(3)))
        inserted.update(p["id"] for p in created)
        if deleted is None:
            deleted = sorted(original - set(seen))[0]
            response = await client.delete(f"{API}/{deleted}", headers=alice.headers)
            assert response.status_code == 204
        body = await get_page(client, alice, limit=10, cursor=body["pagination"]["nextCursor"])
        seen.extend(p["id"] for p in body["data"])
    assert len(seen) == len(set(seen)), "a row was repeated"
    assert set(seen) == original - {deleted}, "a row was skipped or a newer one crept in"
    assert not inserted & set(seen)


async def test_cursor_pages_under_concurrent_inserts_by_name(
    client: httpx.AsyncClient, alice: RegisteredUser, app: FastAPI
) -> None:
    original = {str(i) for i in await seed(app, alice, 30, name=lambda i: f"Name {i:03d}")}

    async def page_through() -> list[dict[str, Any]]:
        return await list_all(client, alice, sort="name", limit=4)

    async def insert_while() -> None:
        for i in range(10):
            await create(client, alice, name=f"Name {i * 3:03d} b")

    pages, _ = await asyncio.gather(page_through(), insert_while())
    ids = [p["id"] for p in pages]
    assert len(ids) == len(set(ids))
    assert original <= set(ids)
    names = [p["name"] for p in pages]
    assert names == sorted(names)


async def test_filters_alone_and_combined(
    client: httpx.AsyncClient, alice: RegisteredUser, app: FastAPI
) -> None:
    statuses = ["active", "completed", "archived"]
    ids = await seed(
        app,
        alice,
        30,
        name=lambda i: f"{'Rocket' if i % 2 else 'Garden'} {i}",
        status=lambda i: statuses[i % 3],
        created_at=lambda i: BASE + timedelta(days=i),
    )
    by_index = {str(project_id): i for i, project_id in enumerate(ids)}

    async def indexes(**params: Any) -> set[int]:
        return {by_index[p["id"]] for p in await list_all(client, alice, **params)}

    assert len(await indexes()) == 30  # the default includes every status
    assert await indexes(status="archived") == {i for i in range(30) if i % 3 == 2}
    assert await indexes(q="rocket") == {i for i in range(30) if i % 2}
    after = (BASE + timedelta(days=10)).isoformat()
    before = (BASE + timedelta(days=20)).isoformat()
    assert await indexes(createdAfter=after) == set(range(10, 30))  # inclusive
    assert await indexes(createdBefore=before) == set(range(20))  # exclusive
    assert await indexes(createdAfter=after, createdBefore=before) == set(range(10, 20))
    assert await indexes(createdAfter=after, createdBefore=before, status="active", q="ROCKET") == {
        i for i in range(10, 20) if i % 2 and i % 3 == 0
    }
    # Naive date-times are read as UTC; offsets are honoured.
    assert await indexes(createdAfter="2026-01-11T00:00:00") == set(range(10, 30))
    assert await indexes(createdAfter="2026-01-11T02:00:00+02:00") == set(range(10, 30))
    total = await get_page(client, alice, status="completed", q="garden")
    assert total["pagination"]["total"] == len({i for i in range(30) if i % 3 == 1 and i % 2 == 0})


async def test_search_treats_special_characters_literally(
    client: httpx.AsyncClient, alice: RegisteredUser
) -> None:
    made = {
        "percent": await create(client, alice, name="Progress", description="100% done"),
        "underscore": await create(client, alice, name="Naming", description="snake_case here"),
        "quotes": await create(client, alice, name="Quotes", description='O\'Brien said "hi"'),
        "backslash": await create(client, alice, name="Paths", description="C:\\temp\\new"),
        "plain": await create(client, alice, name="Plain", description="nothing special 100 x"),
        "strasse": await create(client, alice, name="Straße", description=None),
        "ecole": await create(client, alice, name="ÉCOLE du soir"),
        "tokyo": await create(client, alice, name="東京 Office"),
    }
    names = {v["id"]: k for k, v in made.items()}

    async def search(q: str) -> set[str]:
        return {names[p["id"]] for p in await list_all(client, alice, q=q)}

    assert await search("%") == {"percent"}
    assert await search("100%") == {"percent"}
    assert await search("_") == {"underscore"}
    assert await search("e_c") == {"underscore"}
    assert await search("'") == {"quotes"}
    assert await search('"hi"') == {"quotes"}
    assert await search("\\") == {"backslash"}
    assert await search("\\temp") == {"backslash"}
    assert await search("STRASSE") == {"strasse"}
    assert await search("straße") == {"strasse"}
    assert await search("école") == {"ecole"}
    assert await search("E\u0301COLE") == {"ecole"}
    assert await search("東京") == {"tokyo"}
    assert await search("  progress  ") == {"percent"}
    assert await search("   ") == set(names.values())
    assert await search("' OR 1=1 --") == set()
    assert await search("nomatch") == set()
