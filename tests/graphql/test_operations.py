"""Every §8 query and mutation over HTTP, with REST's rules, codes, audit rows and events."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from tests.conftest import RegisteredUser
from tests.graphql.conftest import CREATE, codes, gql
from tests.projects.conftest import count_rows, seed


async def test_viewer_is_the_signed_in_user(
    client: httpx.AsyncClient, alice: RegisteredUser
) -> None:
    body = await gql(client, "{ viewer { id email name role createdAt } }", user=alice)
    assert body["data"]["viewer"]["id"] == alice.id
    assert body["data"]["viewer"]["email"] == alice.email
    assert body["data"]["viewer"]["role"] == "USER"


async def test_create_then_read_back_with_owner(
    client: httpx.AsyncClient, alice: RegisteredUser, app: FastAPI
) -> None:
    created = await gql(
        client,
        CREATE,
        user=alice,
        variables={"input": {"name": "Launch", "description": "Go", "status": "COMPLETED"}},
    )
    project = created["data"]["createProject"]
    assert project["name"] == "Launch"
    assert project["status"] == "COMPLETED"
    assert project["version"] == 1
    assert project["owner"] == {"id": alice.id, "email": alice.email}
    # The same audit row and outbox event as REST writes.
    assert await count_rows(app, "audit_log", "action = 'project.created'") == 1
    assert await count_rows(app, "events", "type = 'project.created'") == 1
    rest = await client.get(f"/api/v1/projects/{project['id']}", headers=alice.headers)
    assert rest.status_code == 200
    assert rest.json()["name"] == "Launch"
    read = await gql(
        client,
        "query($id: ID!) { project(id: $id) { id name version owner { name } } }",
        user=alice,
        variables={"id": project["id"]},
    )
    assert read["data"]["project"] == {
        "id": project["id"],
        "name": "Launch",
        "version": 1,
        "owner": {"name": "Alice"},
    }


LIST = """query($first: Int, $after: String, $status: ProjectStatus, $q: String,
              $sort: ProjectSort) {
  projects(first: $first, after: $after, status: $status, q: $q, sort: $sort) {
    totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id name status } } } }"""


async def test_projects_pages_with_the_cursors_rest_issues(
    client: httpx.AsyncClient, alice: RegisteredUser, bob: RegisteredUser, app: FastAPI
) -> None:
    ids = await seed(app, alice, 5)
    await seed(app, bob, 2)
    first = await gql(client, LIST, user=alice, variables={"first": 2})
    page = first["data"]["projects"]
    assert page["totalCount"] == 5
    assert page["pageInfo"]["hasNextPage"] is True
    assert [e["node"]["id"] for e in page["edges"]] == [str(ids[4]), str(ids[3])]
    assert page["pageInfo"]["endCursor"] == page["edges"][-1]["cursor"]
    # REST's first page of the same list issues the same cursor after the same row.
    rest = await client.get("/api/v1/projects", params={"limit": 2}, headers=alice.headers)
    assert rest.json()["pagination"]["nextCursor"] == page["pageInfo"]["endCursor"]
    seen = [e["node"]["id"] for e in page["edges"]]
    after = page["pageInfo"]["endCursor"]
    while after:
        body = await gql(client, LIST, user=alice, variables={"first": 2, "after": after})
        page = body["data"]["projects"]
        assert page["totalCount"] is None  # cursor pages are not counted, as in REST
        seen += [e["node"]["id"] for e in page["edges"]]
        after = page["pageInfo"]["endCursor"] if page["pageInfo"]["hasNextPage"] else None
    assert seen == [str(i) for i in reversed(ids)]
    # A REST cursor works over GraphQL too.
    rest_next = await gql(
        client,
        LIST,
        user=alice,
        variables={"first": 2, "after": rest.json()["pagination"]["nextCursor"]},
    )
    assert rest_next["data"]["projects"]["edges"][0]["node"]["id"] == str(ids[2])


async def test_projects_filters_search_and_sorts(
    client: httpx.AsyncClient, alice: RegisteredUser, app: FastAPI
) -> None:
    await seed(
        app,
        alice,
        4,
        name=lambda i: ["Delta", "alpha", "Charlie", "bravo"][i],
        status=lambda i: "archived" if i == 2 else "active",
        description=lambda i: "needle here" if i == 3 else None,
    )
    by_name = await gql(client, LIST, user=alice, variables={"sort": "NAME_ASC"})
    assert [e["node"]["name"] for e in by_name["data"]["projects"]["edges"]] == [
        "Charlie",
        "Delta",
        "alpha",
        "bravo",
    ]
    archived = await gql(client, LIST, user=alice, variables={"status": "ARCHIVED"})
    assert [e["node"]["name"] for e in archived["data"]["projects"]["edges"]] == ["Charlie"]
    found = await gql(client, LIST, user=alice, variables={"q": "NEEDLE"})
    assert [e["node"]["name"] for e in found["data"]["projects"]["edges"]] == ["bravo"]
    for sort in ("CREATED_AT_ASC", "NAME_DESC", "UPDATED_AT_DESC", "UPDATED_AT_ASC"):
        body = await gql(client, LIST, user=alice, variables={"sort": sort, "first": 3})
        assert len(body["data"]["projects"]["edges"]) == 3
        assert body["data"]["projects"]["pageInfo"]["hasNextPage"] is True


async def test_another_users_project_is_null_and_unlisted(
    client: httpx.AsyncClient, alice: RegisteredUser, bob: RegisteredUser, app: FastAPI
) -> None:
    [bobs] = await seed(app, bob, 1)
    body = await gql(
        client,
        "query($id: ID!) { project(id: $id) { id } }",
        user=alice,
        variables={"id": str(bobs)},
    )
    assert body == {"data": {"project": None}}
    for missing in ("not-a-uuid", "00000000-0000-0000-0000-000000000001"):
        body = await gql(
            client,
            "query($id: ID!) { project(id: $id) { id } }",
            user=alice,
            variables={"id": missing},
        )
        assert body["data"]["project"] is None
    listed = await gql(client, LIST, user=alice)
    assert listed["data"]["projects"]["edges"] == []
    assert listed["data"]["projects"]["totalCount"] == 0
    # Alice cannot change or delete it either: NOT_FOUND, as REST's 404.
    update = await gql(
        client,
        'mutation($id: ID!) { updateProject(id: $id, input: {name: "Mine now"}) { id } }',
        user=alice,
        variables={"id": str(bobs)},
    )
    assert codes(update) == ["NOT_FOUND"]
    delete = await gql(
        client,
        "mutation($id: ID!) { deleteProject(id: $id) }",
        user=alice,
        variables={"id": str(bobs)},
    )
    assert codes(delete) == ["NOT_FOUND"]


async def test_admin_sees_every_project_and_user(
    client: httpx.AsyncClient,
    alice: RegisteredUser,
    bob: RegisteredUser,
    admin: RegisteredUser,
    app: FastAPI,
) -> None:
    [bobs] = await seed(app, bob, 1)
    await seed(app, alice, 2)
    body = await gql(client, LIST, user=admin)
    assert body["data"]["projects"]["totalCount"] == 3
    one = await gql(
        client,
        "query($id: ID!) { project(id: $id) { owner { email role } } }",
        user=admin,
        variables={"id": str(bobs)},
    )
    assert one["data"]["project"]["owner"] == {"email": bob.email, "role": "USER"}
    users = await gql(
        client,
        """{ users(first: 2) { totalCount pageInfo { hasNextPage endCursor }
             edges { cursor node { email role projects(first: 1) { totalCount
               edges { node { name } } } } } } }""",
        user=admin,
    )
    page = users["data"]["users"]
    assert page["totalCount"] == 3
    assert page["pageInfo"]["hasNextPage"] is True
    rest = await gql(
        client,
        "query($after: String) { users(first: 2, after: $after) { pageInfo { hasNextPage } "
        "edges { node { email } } } }",
        user=admin,
        variables={"after": page["pageInfo"]["endCursor"]},
    )
    emails = [e["node"]["email"] for e in page["edges"]] + [
        e["node"]["email"] for e in rest["data"]["users"]["edges"]
    ]
    assert sorted(emails) == sorted([alice.email, bob.email, admin.email])
    assert rest["data"]["users"]["pageInfo"]["hasNextPage"] is False
    counts = {e["node"]["email"]: e["node"]["projects"]["totalCount"] for e in page["edges"]}
    assert all(
        counts[email] == {alice.email: 2, bob.email: 1, admin.email: 0}[email] for email in counts
    )


async def test_users_is_forbidden_for_a_user(
    client: httpx.AsyncClient, alice: RegisteredUser
) -> None:
    body = await gql(client, "{ users { totalCount } }", user=alice)
    assert body["data"] is None
    assert codes(body) == ["FORBIDDEN"]
    assert body["errors"][0]["path"] == ["users"]


async def test_viewer_projects_page_through(
    client: httpx.AsyncClient, alice: RegisteredUser, app: FastAPI
) -> None:
    ids = await seed(app, alice, 3)
    query = """query($after: String) { viewer { projects(first: 2, after: $after) {
        totalCount pageInfo { hasNextPage endCursor } edges { node { id } } } } }"""
    first = (await gql(client, query, user=alice))["data"]["viewer"]["projects"]
    assert first["totalCount"] == 3
    assert [e["node"]["id"] for e in first["edges"]] == [str(ids[2]), str(ids[1])]
    rest = await gql(client, query, user=alice, variables={"after": first["pageInfo"]["endCursor"]})
    page = rest["data"]["viewer"]["projects"]
    assert [e["node"]["id"] for e in page["edges"]] == [str(ids[0])]
    assert page["pageInfo"]["hasNextPage"] is False


UPDATE = """mutation($id: ID!, $input: UpdateProjectInput!, $ifMatch: String) {
  updateProject(id: $id, input: $input, ifMatch: $ifMatch) {
    id name description status version } }"""


async def test_update_with_if_match_and_stale_version(
    client: httpx.AsyncClient, alice: RegisteredUser, app: FastAPI
) -> None:
    created = await gql(
        client, CREATE, user=alice, variables={"input": {"name": "First", "description": "d"}}
    )
    pid = created["data"]["createProject"]["id"]
    updated = await gql(
        client,
        UPDATE,
        user=alice,
        variables={"id": pid, "input": {"name": "Second", "description": None}, "ifMatch": "1"},
    )
    assert updated["data"]["updateProject"] == {
        "id": pid,
        "name": "Second",
        "description": None,
        "status": "ACTIVE",
        "version": 2,
    }
    stale = await gql(
        client,
        UPDATE,
        user=alice,
        variables={"id": pid, "input": {"status": "ARCHIVED"}, "ifMatch": '"1"'},
    )
    assert stale["data"] is None
    assert codes(stale) == ["PRECONDITION_FAILED"]
    fresh = await gql(
        client,
        UPDATE,
        user=alice,
        variables={"id": pid, "input": {"status": "ARCHIVED"}, "ifMatch": '"2"'},
    )
    assert fresh["data"]["updateProject"]["status"] == "ARCHIVED"
    assert await count_rows(app, "audit_log", "action = 'project.updated'") == 2
    assert await count_rows(app, "events", "type = 'project.updated'") == 2


async def test_delete_then_gone(
    client: httpx.AsyncClient, alice: RegisteredUser, app: FastAPI
) -> None:
    created = await gql(client, CREATE, user=alice, variables={"input": {"name": "Doomed"}})
    pid = created["data"]["createProject"]["id"]
    stale = await gql(
        client,
        'mutation($id: ID!) { deleteProject(id: $id, ifMatch: "7") }',
        user=alice,
        variables={"id": pid},
    )
    assert codes(stale) == ["PRECONDITION_FAILED"]
    body = await gql(
        client, "mutation($id: ID!) { deleteProject(id: $id) }", user=alice, variables={"id": pid}
    )
    assert body == {"data": {"deleteProject": True}}
    gone = await gql(
        client, "query($id: ID!) { project(id: $id) { id } }", user=alice, variables={"id": pid}
    )
    assert gone["data"]["project"] is None
    assert await count_rows(app, "events", "type = 'project.deleted'") == 1


async def test_validation_errors_carry_rest_details(
    client: httpx.AsyncClient, alice: RegisteredUser, app: FastAPI
) -> None:
    body = await gql(client, CREATE, user=alice, variables={"input": {"name": "x!"}})
    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == "VALIDATION_ERROR"
    assert error["extensions"]["details"][0]["field"] == "name"
    long = await gql(
        client, CREATE, user=alice, variables={"input": {"name": "Fine", "description": "d" * 1001}}
    )
    assert long["errors"][0]["extensions"]["details"][0]["field"] == "description"
    nul = await gql(client, CREATE, user=alice, variables={"input": {"name": "Fine\u0000"}})
    assert codes(nul) == ["VALIDATION_ERROR"]
    empty = await gql(client, UPDATE, user=alice, variables={"id": "x", "input": {}})
    assert codes(empty) == ["VALIDATION_ERROR"]
    for variables in (
        {"first": 0},
        {"first": 101},
        {"after": "garbage"},
        {"after": "x" * 600},
        {"q": "q" * 201},
    ):
        bad = await gql(client, LIST, user=alice, variables=variables)
        assert codes(bad) == ["VALIDATION_ERROR"], variables
    # Another sort's cursor is refused, not silently misapplied.
    await seed(app, alice, 3)
    page = await gql(client, LIST, user=alice, variables={"first": 1})
    cursor = page["data"]["projects"]["pageInfo"]["endCursor"]
    other = await gql(client, LIST, user=alice, variables={"after": cursor, "sort": "NAME_ASC"})
    assert codes(other) == ["VALIDATION_ERROR"]
    assert await count_rows(app, "projects") == 3


async def test_a_failed_mutation_commits_nothing_of_its_operation(
    client: httpx.AsyncClient, alice: RegisteredUser, app: FastAPI
) -> None:
    body = await gql(
        client,
        """mutation { a: createProject(input: {name: "Kept"}) { id }
                      b: updateProject(id: "nope", input: {name: "Never"}) { id } }""",
        user=alice,
    )
    assert body["data"] is None
    assert codes(body) == ["NOT_FOUND"]
    assert await count_rows(app, "projects") == 0
    assert await count_rows(app, "audit_log", "action = 'project.created'") == 0


async def _rest_code(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    response = await client.get("/api/v1/auth/profile", headers=headers)
    assert response.status_code == 401
    code: str = response.json()["code"]
    return code


async def test_missing_bad_and_revoked_tokens_get_rests_codes(
    client: httpx.AsyncClient, alice: RegisteredUser
) -> None:
    body = await gql(client, "{ viewer { id } }")
    assert codes(body) == ["UNAUTHORIZED"]
    bad = {"Authorization": "Bearer nope"}
    response = await client.post("/graphql", json={"query": "{ viewer { id } }"}, headers=bad)
    assert codes(response.json()) == [await _rest_code(client, bad)]
    logout = await client.post(
        "/api/v1/auth/logout", json={"refreshToken": alice.refresh_token}, headers=alice.headers
    )
    assert logout.status_code == 204
    revoked = await gql(client, "{ viewer { id } }", user=alice)
    assert codes(revoked) == [await _rest_code(client, alice.headers)]
