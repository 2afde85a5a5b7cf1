"""ProjectService over a real grpc.aio channel: every unary method and its status codes."""

from __future__ import annotations

import grpc
import httpx
from fastapi import FastAPI
from google.protobuf import field_mask_pb2

from keel.v1 import auth_service_pb2, project_pb2, project_service_pb2
from tests.conftest import RegisteredUser, promote_to_admin, register_user
from tests.rpc.conftest import Stubs, bearer, rich_status, rpc_error

P = project_pb2
S = project_service_pb2


async def _create(stubs: Stubs, user: RegisteredUser, name: str, **fields: object) -> P.Project:
    return await stubs.projects.CreateProject(
        S.CreateProjectRequest(project=P.Project(display_name=name, **fields)),
        metadata=bearer(user.access_token),
    )


async def test_create_get_update_delete_round_trip(client: httpx.AsyncClient, stubs: Stubs) -> None:
    user = await register_user(client)
    auth = bearer(user.access_token)
    created = await _create(
        stubs,
        user,
        "  Website relaunch ",
        description="New site",
        status=P.PROJECT_STATUS_COMPLETED,
    )
    assert created.name.startswith("projects/")
    assert created.owner == f"users/{user.id}"
    assert created.display_name == "Website relaunch"
    assert created.description == "New site"
    assert created.status == P.PROJECT_STATUS_COMPLETED
    assert created.etag == '"1"'
    # REST sees the same project.
    project_id = created.name.removeprefix("projects/")
    rest = await client.get(f"/api/v1/projects/{project_id}", headers=user.headers)
    assert rest.status_code == 200
    assert rest.json()["name"] == "Website relaunch"

    fetched = await stubs.projects.GetProject(S.GetProjectRequest(name=created.name), metadata=auth)
    assert fetched == created

    renamed = await stubs.projects.UpdateProject(
        S.UpdateProjectRequest(
            project=P.Project(name=created.name, display_name="Website two", etag=created.etag),
            update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
        ),
        metadata=auth,
    )
    assert renamed.display_name == "Website two"
    assert renamed.description == "New site"  # not in the mask: unchanged
    assert renamed.etag == '"2"'

    stale = await rpc_error(
        stubs.projects.UpdateProject(
            S.UpdateProjectRequest(
                project=P.Project(name=created.name, display_name="Stale edit", etag=created.etag)
            ),
            metadata=auth,
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert rich_status(stale)["reason"] == "PRECONDITION_FAILED"

    cleared = await stubs.projects.UpdateProject(
        S.UpdateProjectRequest(
            project=P.Project(name=created.name, status=P.PROJECT_STATUS_ARCHIVED),
            update_mask=field_mask_pb2.FieldMask(paths=["description", "status"]),
        ),
        metadata=auth,
    )
    assert not cleared.HasField("description")
    assert cleared.status == P.PROJECT_STATUS_ARCHIVED

    # Without a mask the fields that are set change; `*` replaces all three.
    unmasked = await stubs.projects.UpdateProject(
        S.UpdateProjectRequest(project=P.Project(name=created.name, description="Back again")),
        metadata=auth,
    )
    assert unmasked.description == "Back again"
    assert unmasked.display_name == "Website two"
    replaced = await stubs.projects.UpdateProject(
        S.UpdateProjectRequest(
            project=P.Project(name=created.name, display_name="Fresh start"),
            update_mask=field_mask_pb2.FieldMask(paths=["*"]),
        ),
        metadata=auth,
    )
    assert replaced.status == P.PROJECT_STATUS_ACTIVE  # replaced: the default again
    assert not replaced.HasField("description")

    await rpc_error(
        stubs.projects.DeleteProject(
            S.DeleteProjectRequest(name=created.name, etag=created.etag), metadata=auth
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    await stubs.projects.DeleteProject(
        S.DeleteProjectRequest(name=created.name, etag=replaced.etag), metadata=auth
    )
    await rpc_error(
        stubs.projects.GetProject(S.GetProjectRequest(name=created.name), metadata=auth),
        grpc.StatusCode.NOT_FOUND,
    )


async def test_another_users_project_is_not_found_for_every_method(
    client: httpx.AsyncClient, stubs: Stubs
) -> None:
    owner = await register_user(client)
    stranger = await register_user(client)
    project = await _create(stubs, owner, "Private plans")
    theirs = bearer(stranger.access_token)
    calls = [
        stubs.projects.GetProject(S.GetProjectRequest(name=project.name), metadata=theirs),
        stubs.projects.UpdateProject(
            S.UpdateProjectRequest(project=P.Project(name=project.name, display_name="Mine now")),
            metadata=theirs,
        ),
        stubs.projects.DeleteProject(S.DeleteProjectRequest(name=project.name), metadata=theirs),
        # Malformed names name nothing either.
        stubs.projects.GetProject(S.GetProjectRequest(name="projects/not-a-uuid"), metadata=theirs),
        stubs.projects.GetProject(S.GetProjectRequest(name=project.name[9:]), metadata=theirs),
    ]
    for call in calls:
        error = await rpc_error(call, grpc.StatusCode.NOT_FOUND)
        assert rich_status(error)["reason"] == "NOT_FOUND"
    listed = await stubs.projects.ListProjects(S.ListProjectsRequest(), metadata=theirs)
    assert list(listed.projects) == []


async def test_invalid_fields_are_invalid_argument_with_field_violations(
    client: httpx.AsyncClient, stubs: Stubs
) -> None:
    user = await register_user(client)
    auth = bearer(user.access_token)
    cases = [
        (S.CreateProjectRequest(project=P.Project(display_name="x!")), "project.display_name"),
        (
            S.CreateProjectRequest(project=P.Project(display_name="Fine name", description="a\0b")),
            "project.description",
        ),
        (
            S.CreateProjectRequest(
                project=P.Project(display_name="Fine name", description="d" * 1001)
            ),
            "project.description",
        ),
        (
            S.CreateProjectRequest(project=P.Project(display_name="Fine", status=99)),
            "project.status",
        ),
        (
            S.CreateProjectRequest(project=P.Project(display_name="Fine"), request_id="has space"),
            "request_id",
        ),
    ]
    for request, field in cases:
        error = await rpc_error(
            stubs.projects.CreateProject(request, metadata=auth), grpc.StatusCode.INVALID_ARGUMENT
        )
        details = rich_status(error)
        assert details["reason"] == "VALIDATION_ERROR"
        assert field in details["violations"], details
    project = await _create(stubs, user, "Valid one")
    for request, field in [
        (
            S.UpdateProjectRequest(
                project=P.Project(name=project.name, display_name="Other"),
                update_mask=field_mask_pb2.FieldMask(paths=["owner"]),
            ),
            "update_mask",
        ),
        (S.UpdateProjectRequest(project=P.Project(name=project.name)), "update_mask"),
        (
            S.UpdateProjectRequest(
                project=P.Project(name=project.name),
                update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
            ),
            "project.display_name",
        ),
    ]:
        error = await rpc_error(
            stubs.projects.UpdateProject(request, metadata=auth), grpc.StatusCode.INVALID_ARGUMENT
        )
        assert field in rich_status(error)["violations"]


async def test_request_id_makes_create_idempotent_and_a_reuse_already_exists(
    client: httpx.AsyncClient, stubs: Stubs
) -> None:
    user = await register_user(client)
    auth = bearer(user.access_token)
    request = S.CreateProjectRequest(
        project=P.Project(display_name="Only once"), request_id="create-1"
    )
    first = await stubs.projects.CreateProject(request, metadata=auth)
    second = await stubs.projects.CreateProject(request, metadata=auth)
    assert first == second
    listed = await stubs.projects.ListProjects(S.ListProjectsRequest(), metadata=auth)
    assert len(listed.projects) == 1
    error = await rpc_error(
        stubs.projects.CreateProject(
            S.CreateProjectRequest(project=P.Project(display_name="Other"), request_id="create-1"),
            metadata=auth,
        ),
        grpc.StatusCode.ALREADY_EXISTS,
    )
    assert rich_status(error)["reason"] == "IDEMPOTENCY_KEY_REUSED"


async def test_list_pages_with_tokens_and_orders(client: httpx.AsyncClient, stubs: Stubs) -> None:
    user = await register_user(client)
    auth = bearer(user.access_token)
    for name in ("Bravo", "Alpha", "Charlie"):
        await _create(stubs, user, name)
    first = await stubs.projects.ListProjects(
        S.ListProjectsRequest(page_size=2, order_by="display_name"), metadata=auth
    )
    assert [p.display_name for p in first.projects] == ["Alpha", "Bravo"]
    assert first.total_size == 3
    assert first.next_page_token
    rest = await stubs.projects.ListProjects(
        S.ListProjectsRequest(
            page_size=2, order_by="display_name", page_token=first.next_page_token
        ),
        metadata=auth,
    )
    assert [p.display_name for p in rest.projects] == ["Charlie"]
    assert rest.next_page_token == ""
    newest = await stubs.projects.ListProjects(
        S.ListProjectsRequest(page_size=500, parent=f"users/{user.id}"), metadata=auth
    )
    assert [p.display_name for p in newest.projects] == ["Charlie", "Alpha", "Bravo"]
    for request, field in [
        (S.ListProjectsRequest(page_size=-1), "page_size"),
        (S.ListProjectsRequest(order_by="owner"), "order_by"),
        (S.ListProjectsRequest(page_token="forged"), "page_token"),
        (
            S.ListProjectsRequest(order_by="create_time", page_token=first.next_page_token),
            "page_token",
        ),
        (S.ListProjectsRequest(parent="teams/1"), "parent"),
    ]:
        error = await rpc_error(
            stubs.projects.ListProjects(request, metadata=auth), grpc.StatusCode.INVALID_ARGUMENT
        )
        assert field in rich_status(error)["violations"], (request, rich_status(error))


async def test_only_admins_list_another_users_projects(
    app: FastAPI, client: httpx.AsyncClient, stubs: Stubs
) -> None:
    owner = await register_user(client)
    await _create(stubs, owner, "Owned project")
    other = await register_user(client)
    error = await rpc_error(
        stubs.projects.ListProjects(
            S.ListProjectsRequest(parent=f"users/{owner.id}"), metadata=bearer(other.access_token)
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    assert rich_status(error)["reason"] == "FORBIDDEN"
    await promote_to_admin(app, other.id)
    signed_in = await stubs.auth.Login(
        auth_service_pb2.LoginRequest(email=other.email, password=other.password)
    )
    admin = bearer(signed_in.tokens.access_token)
    theirs = await stubs.projects.ListProjects(
        S.ListProjectsRequest(parent=f"users/{owner.id}"), metadata=admin
    )
    assert [p.display_name for p in theirs.projects] == ["Owned project"]
    everyone = await stubs.projects.ListProjects(
        S.ListProjectsRequest(parent="users/-"), metadata=admin
    )
    assert len(everyone.projects) == 1
