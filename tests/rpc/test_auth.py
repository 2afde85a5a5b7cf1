"""AuthService over a real grpc.aio channel: sign-in, rotation, and their failures."""

from __future__ import annotations

import grpc
import httpx

from keel.v1 import auth_service_pb2, project_service_pb2
from tests.conftest import register_user
from tests.rpc.conftest import Stubs, bearer, rich_status, rpc_error


async def test_login_returns_the_user_and_a_working_token_pair(
    client: httpx.AsyncClient, stubs: Stubs
) -> None:
    user = await register_user(client, name="Ada Lovelace")
    response = await stubs.auth.Login(
        auth_service_pb2.LoginRequest(email=user.email.upper(), password=user.password)
    )
    assert response.user.name == f"users/{user.id}"
    assert response.user.email == user.email
    assert response.user.display_name == "Ada Lovelace"
    assert response.user.role == auth_service_pb2.USER_ROLE_USER
    assert response.user.create_time.seconds > 0
    assert response.tokens.access_token
    assert response.tokens.refresh_token
    assert response.tokens.access_token_expire_time.seconds > 0
    listed = await stubs.projects.ListProjects(
        project_service_pb2.ListProjectsRequest(), metadata=bearer(response.tokens.access_token)
    )
    assert list(listed.projects) == []


async def test_wrong_password_and_unknown_email_are_the_same_unauthenticated(
    client: httpx.AsyncClient, stubs: Stubs
) -> None:
    user = await register_user(client)
    wrong = await rpc_error(
        stubs.auth.Login(auth_service_pb2.LoginRequest(email=user.email, password="not it at all")),
        grpc.StatusCode.UNAUTHENTICATED,
    )
    unknown = await rpc_error(
        stubs.auth.Login(
            auth_service_pb2.LoginRequest(email="nobody@example.com", password="not it at all")
        ),
        grpc.StatusCode.UNAUTHENTICATED,
    )
    assert wrong.details() == unknown.details()
    assert rich_status(wrong)["reason"] == rich_status(unknown)["reason"] == "INVALID_CREDENTIALS"


async def test_login_validation_names_the_proto_field(stubs: Stubs) -> None:
    error = await rpc_error(
        stubs.auth.Login(auth_service_pb2.LoginRequest(email="", password="x\x00y")),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    details = rich_status(error)
    assert details["reason"] == "VALIDATION_ERROR"
    assert set(details["violations"]) >= {"email"}


async def test_repeated_failures_lock_the_account_with_a_retry_delay(
    client: httpx.AsyncClient, stubs: Stubs
) -> None:
    user = await register_user(client)
    bad = auth_service_pb2.LoginRequest(email=user.email, password="wrong password!")
    for _ in range(5):
        await rpc_error(stubs.auth.Login(bad), grpc.StatusCode.UNAUTHENTICATED)
    error = await rpc_error(
        stubs.auth.Login(auth_service_pb2.LoginRequest(email=user.email, password=user.password)),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    )
    details = rich_status(error)
    assert details["retry_seconds"]
    assert details["retry_seconds"] > 0


async def test_refresh_rotates_and_a_garbage_token_is_unauthenticated(
    client: httpx.AsyncClient, stubs: Stubs
) -> None:
    user = await register_user(client)
    rotated = await stubs.auth.Refresh(
        auth_service_pb2.RefreshRequest(refresh_token=user.refresh_token)
    )
    assert rotated.tokens.refresh_token != user.refresh_token
    again = await stubs.auth.Refresh(
        auth_service_pb2.RefreshRequest(refresh_token=rotated.tokens.refresh_token)
    )
    assert again.tokens.access_token
    error = await rpc_error(
        stubs.auth.Refresh(auth_service_pb2.RefreshRequest(refresh_token="garbage")),
        grpc.StatusCode.UNAUTHENTICATED,
    )
    assert rich_status(error)["reason"] == "INVALID_TOKEN"
    # An access token is not a refresh token.
    await rpc_error(
        stubs.auth.Refresh(auth_service_pb2.RefreshRequest(refresh_token=user.access_token)),
        grpc.StatusCode.UNAUTHENTICATED,
    )
    empty = await rpc_error(
        stubs.auth.Refresh(auth_service_pb2.RefreshRequest()), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert "refresh_token" in rich_status(empty)["violations"]
