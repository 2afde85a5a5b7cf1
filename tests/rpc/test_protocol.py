"""The gRPC front door itself: tokens, hostile messages, health, reflection, metrics, request
ids, rate limits shared with REST, and deadlines."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import grpc
import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from keel.app import create_app
from keel.platform.security import TokenCodec
from keel.settings import Settings
from keel.v1 import project_pb2, project_service_pb2
from tests.conftest import register_user
from tests.rpc.conftest import Stubs, bearer, open_stubs, rich_status, rpc_error, trailer
from tests.servers import free_port

S = project_service_pb2
LIST = S.ListProjectsRequest()


async def test_missing_malformed_and_refresh_tokens_are_unauthenticated(
    client: httpx.AsyncClient, stubs: Stubs
) -> None:
    user = await register_user(client)
    for metadata in [
        (),
        (("authorization", "Basic abc"),),
        bearer("not.a.jwt"),
        bearer(user.refresh_token),
    ]:
        error = await rpc_error(
            stubs.projects.ListProjects(LIST, metadata=metadata), grpc.StatusCode.UNAUTHENTICATED
        )
        assert rich_status(error)["reason"] in {"UNAUTHORIZED", "INVALID_TOKEN"}


async def test_expired_token_is_unauthenticated(
    client: httpx.AsyncClient, stubs: Stubs, settings: Settings
) -> None:
    user = await register_user(client)
    profile = await client.get("/api/v1/auth/sessions", headers=user.headers)
    sid = profile.json()["data"][0]["id"]
    codec = TokenCodec(algorithm="HS256", secret=settings.signing_secret, issuer="keel")
    expired = codec.encode(
        subject=user.id,
        token_type="access",
        ttl=timedelta(minutes=15),
        claims={"sid": sid, "role": "user"},
        now=datetime.now(UTC) - timedelta(hours=1),
    )
    error = await rpc_error(
        stubs.projects.ListProjects(LIST, metadata=bearer(expired)),
        grpc.StatusCode.UNAUTHENTICATED,
    )
    assert rich_status(error)["reason"] == "INVALID_TOKEN"


async def test_revoked_session_is_refused_at_once(client: httpx.AsyncClient, stubs: Stubs) -> None:
    user = await register_user(client)
    auth = bearer(user.access_token)
    await stubs.projects.ListProjects(LIST, metadata=auth)  # warm the session cache
    response = await client.post("/api/v1/auth/logout", json={"refreshToken": user.refresh_token})
    assert response.status_code == 204
    error = await rpc_error(
        stubs.projects.ListProjects(LIST, metadata=auth), grpc.StatusCode.UNAUTHENTICATED
    )
    assert rich_status(error)["reason"] == "SESSION_REVOKED"


@pytest.mark.parametrize(
    "payload",
    [
        b"\x0a\x05ab",  # field 1 claims 5 bytes, has 2
        b"\x0a\x02\xff\xfe",  # a string field that is not UTF-8
        b"\xff\xff\xff\xff",  # not a message at all
    ],
)
async def test_malformed_messages_are_invalid_argument(
    client: httpx.AsyncClient, stubs: Stubs, payload: bytes
) -> None:
    user = await register_user(client)
    raw = stubs.channel.unary_unary("/keel.v1.ProjectService/GetProject")
    error = await rpc_error(
        raw(payload, metadata=bearer(user.access_token)), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert rich_status(error)["reason"] == "INVALID_MESSAGE"


async def test_oversized_message_is_resource_exhausted(
    client: httpx.AsyncClient, stubs: Stubs
) -> None:
    user = await register_user(client)
    huge = S.CreateProjectRequest(
        project=project_pb2.Project(display_name="Big", description="x" * (1024 * 1024 + 1))
    )
    await rpc_error(
        stubs.projects.CreateProject(huge, metadata=bearer(user.access_token)),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    )
    listed = await stubs.projects.ListProjects(LIST, metadata=bearer(user.access_token))
    assert list(listed.projects) == []


async def test_unknown_method_is_unimplemented(stubs: Stubs) -> None:
    raw = stubs.channel.unary_unary("/keel.v1.ProjectService/LaunchRocket")
    await rpc_error(raw(b""), grpc.StatusCode.UNIMPLEMENTED)


async def test_health_reports_serving_per_service(stubs: Stubs) -> None:
    health = health_pb2_grpc.HealthStub(stubs.channel)
    for service in ("", "keel.v1.ProjectService", "keel.v1.AuthService"):
        answer = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    await rpc_error(
        health.Check(health_pb2.HealthCheckRequest(service="keel.v1.Nothing")),
        grpc.StatusCode.NOT_FOUND,
    )


async def test_reflection_lists_and_describes_the_services(stubs: Stubs) -> None:
    reflection = reflection_pb2_grpc.ServerReflectionStub(stubs.channel)

    async def ask() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
        yield reflection_pb2.ServerReflectionRequest(list_services="")
        yield reflection_pb2.ServerReflectionRequest(
            file_containing_symbol="keel.v1.ProjectService"
        )

    answers = [answer async for answer in reflection.ServerReflectionInfo(ask())]
    names = {service.name for service in answers[0].list_services_response.service}
    assert {"keel.v1.AuthService", "keel.v1.ProjectService", "grpc.health.v1.Health"} <= names
    files = answers[1].file_descriptor_response.file_descriptor_proto
    assert files
    assert any(b"WatchProjects" in descriptor for descriptor in files)


async def test_request_id_is_echoed_or_made_and_metrics_count_calls(
    client: httpx.AsyncClient, stubs: Stubs
) -> None:
    user = await register_user(client)
    call = stubs.projects.ListProjects(
        LIST, metadata=(*bearer(user.access_token), ("x-request-id", "trace-42"))
    )
    await call
    assert ("x-request-id", "trace-42") in tuple(await call.trailing_metadata())
    error = await rpc_error(
        stubs.projects.GetProject(
            S.GetProjectRequest(name=f"projects/{uuid.uuid4()}"),
            metadata=(*bearer(user.access_token), ("x-request-id", "bad id with spaces")),
        ),
        grpc.StatusCode.NOT_FOUND,
    )
    made = trailer(error, "x-request-id")
    assert made
    assert made != "bad id with spaces"
    metrics = (await client.get("/metrics")).text
    assert (
        'grpc_server_handled_total{grpc_code="OK",grpc_method="ListProjects",'
        'grpc_service="keel.v1.ProjectService"}'
    ) in metrics
    assert 'grpc_code="NOT_FOUND",grpc_method="GetProject"' in metrics
    assert "grpc_server_handling_seconds_bucket" in metrics


@pytest.fixture
async def limited(make_settings: Callable[..., Settings]) -> AsyncIterator[tuple[FastAPI, int]]:
    port = free_port()
    application = create_app(
        make_settings(
            grpc_port=port,
            grpc_host="127.0.0.1",
            # Hour windows: a sliding window counter weighs the last window's hits down as
            # the next one goes on, so a test crossing a minute boundary could be let through.
            rate_limit_authenticated="4/hour",
            rate_limit_anonymous="2/hour",
        )
    )
    async with LifespanManager(application, startup_timeout=30, shutdown_timeout=30):
        yield application, port


async def test_rate_limits_are_shared_with_rest_and_exhaust(
    limited: tuple[FastAPI, int],
) -> None:
    application, port = limited
    transport = httpx.ASGITransport(app=application, client=("203.0.113.20", 50000))
    stubs = open_stubs(port)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://keel.test") as http:
            user = await register_user(http)
            for _ in range(2):  # REST spends half of this user's budget
                assert (await http.get("/api/v1/projects", headers=user.headers)).status_code == 200
        auth = bearer(user.access_token)
        for _ in range(2):
            await stubs.projects.ListProjects(LIST, metadata=auth)
        error = await rpc_error(
            stubs.projects.ListProjects(LIST, metadata=auth), grpc.StatusCode.RESOURCE_EXHAUSTED
        )
        assert rich_status(error)["reason"] == "RATE_LIMITED"
        assert int(trailer(error, "retry-after") or 0) >= 1
        assert trailer(error, "ratelimit-limit") == "4"
        # Without a valid token the caller's address pays, under the anonymous limit.
        for _ in range(2):
            await rpc_error(
                stubs.projects.ListProjects(LIST, metadata=bearer("nope")),
                grpc.StatusCode.UNAUTHENTICATED,
            )
        await rpc_error(
            stubs.projects.ListProjects(LIST, metadata=bearer("nope")),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
        )
        # Health checks are never limited.
        health = health_pb2_grpc.HealthStub(stubs.channel)
        answer = await health.Check(health_pb2.HealthCheckRequest())
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await stubs.channel.close()


async def test_an_expired_deadline_is_deadline_exceeded(
    client: httpx.AsyncClient, stubs: Stubs
) -> None:
    user = await register_user(client)
    await rpc_error(
        stubs.projects.ListProjects(LIST, metadata=bearer(user.access_token), timeout=0.000001),
        grpc.StatusCode.DEADLINE_EXCEEDED,
    )
