"""WatchProjects over real grpc.aio streams: live delivery, resume, filters, the ends of a
stream (client gone, deadline, revoked session, shutdown) and delivery across two processes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from keel.app import create_app
from keel.realtime.hub import HUB
from keel.settings import Settings
from keel.v1 import project_service_pb2
from tests.conftest import RegisteredUser, register_user
from tests.realtime.test_scale import _server_env
from tests.rpc.conftest import Stubs, bearer, open_stubs, rich_status, rpc_error
from tests.servers import Server, free_port, run_server

S = project_service_pb2
RECEIVE_TIMEOUT = 10.0


async def _next(stream: Any) -> S.WatchProjectsResponse:
    # Any: a grpc.aio unary-stream call.
    message: S.WatchProjectsResponse = await asyncio.wait_for(stream.read(), RECEIVE_TIMEOUT)
    assert message is not grpc.aio.EOF
    return message


async def _until_ready(stream: Any) -> list[S.WatchProjectsResponse]:
    before = []
    while (message := await _next(stream)).WhichOneof("message") != "ready":
        before.append(message)
    return before


async def _until_closed(stream: Any) -> grpc.aio.AioRpcError:
    """Read on until the stream ends; the status it ended with."""
    try:
        while True:
            await _next(stream)
    except grpc.aio.AioRpcError as error:
        return error


async def _create(http: httpx.AsyncClient, user: RegisteredUser, name: str) -> dict[str, Any]:
    response = await http.post("/api/v1/projects", json={"name": name}, headers=user.headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def _no_subscribers(app: FastAPI) -> None:
    hub = app.state.services.get(HUB)
    async with asyncio.timeout(RECEIVE_TIMEOUT):
        while hub.subscriber_count:
            await asyncio.sleep(0.02)


async def test_events_arrive_live_for_visible_projects_only(
    client: httpx.AsyncClient, stubs: Stubs
) -> None:
    user = await register_user(client)
    stranger = await register_user(client)
    stream = stubs.projects.WatchProjects(
        S.WatchProjectsRequest(), metadata=bearer(user.access_token)
    )
    assert await _until_ready(stream) == []
    await _create(client, stranger, "Not yours")
    mine = await _create(client, user, "Yours truly")
    event = (await _next(stream)).event
    assert event.type == S.PROJECT_EVENT_TYPE_CREATED
    assert event.project.name == f"projects/{mine['id']}"
    assert event.project.display_name == "Yours truly"
    assert event.event_time.seconds > 0
    assert int(event.id) > 0
    patched = await client.patch(
        f"/api/v1/projects/{mine['id']}", json={"status": "completed"}, headers=user.headers
    )
    assert patched.status_code == 200
    updated = (await _next(stream)).event
    assert updated.type == S.PROJECT_EVENT_TYPE_UPDATED
    assert int(updated.id) > int(event.id)
    deleted = await client.delete(f"/api/v1/projects/{mine['id']}", headers=user.headers)
    assert deleted.status_code == 204
    assert (await _next(stream)).event.type == S.PROJECT_EVENT_TYPE_DELETED
    stream.cancel()


async def test_resume_after_last_event_id_replays_missed_events_in_order(
    client: httpx.AsyncClient, stubs: Stubs
) -> None:
    user = await register_user(client)
    auth = bearer(user.access_token)
    first = await _create(client, user, "First one")
    stream = stubs.projects.WatchProjects(S.WatchProjectsRequest(), metadata=auth)
    await _until_ready(stream)
    second = await _create(client, user, "Second one")
    seen = (await _next(stream)).event
    stream.cancel()
    third = await _create(client, user, "Third one")
    fourth = await _create(client, user, "Fourth one")
    resumed = stubs.projects.WatchProjects(
        S.WatchProjectsRequest(last_event_id=seen.id), metadata=auth
    )
    missed = await _until_ready(resumed)
    assert [m.event.project.name for m in missed] == [
        f"projects/{third['id']}",
        f"projects/{fourth['id']}",
    ]
    resumed.cancel()
    assert seen.project.name == f"projects/{second['id']}"
    # From before the first event: everything, in commit order.
    everything = stubs.projects.WatchProjects(
        S.WatchProjectsRequest(last_event_id="0"), metadata=auth
    )
    names = [m.event.project.name for m in await _until_ready(everything)]
    assert names[0] == f"projects/{first['id']}"
    assert len(names) == 4
    everything.cancel()


async def test_unknown_last_event_id_asks_for_a_resync(
    client: httpx.AsyncClient, stubs: Stubs
) -> None:
    user = await register_user(client)
    stream = stubs.projects.WatchProjects(
        S.WatchProjectsRequest(last_event_id="999999"), metadata=bearer(user.access_token)
    )
    before = await _until_ready(stream)
    assert [m.WhichOneof("message") for m in before] == ["resync"]
    assert before[0].resync.reason
    stream.cancel()


async def test_names_narrow_the_stream_and_bad_requests_fail(
    client: httpx.AsyncClient, stubs: Stubs
) -> None:
    user = await register_user(client)
    auth = bearer(user.access_token)
    watched = await _create(client, user, "Watched one")
    other = await _create(client, user, "Other one")
    stream = stubs.projects.WatchProjects(
        S.WatchProjectsRequest(names=[f"projects/{watched['id']}"]), metadata=auth
    )
    await _until_ready(stream)
    for project in (other, watched):
        response = await client.patch(
            f"/api/v1/projects/{project['id']}", json={"status": "archived"}, headers=user.headers
        )
        assert response.status_code == 200
    assert (await _next(stream)).event.project.name == f"projects/{watched['id']}"
    stream.cancel()
    for request, field in [
        (S.WatchProjectsRequest(names=["teams/1"]), "names"),
        (S.WatchProjectsRequest(names=["projects/x"] * 101), "names"),
        (S.WatchProjectsRequest(last_event_id="9" * 40), "last_event_id"),
    ]:
        error = await rpc_error(
            _first(stubs.projects.WatchProjects(request, metadata=auth)),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        assert field in rich_status(error)["violations"]
    await rpc_error(
        _first(stubs.projects.WatchProjects(S.WatchProjectsRequest())),
        grpc.StatusCode.UNAUTHENTICATED,
    )


async def _first(stream: Any) -> Any:
    return await stream.read()


async def test_a_client_that_goes_away_or_runs_out_of_time_releases_its_stream(
    app: FastAPI, client: httpx.AsyncClient, stubs: Stubs
) -> None:
    user = await register_user(client)
    auth = bearer(user.access_token)
    stream = stubs.projects.WatchProjects(S.WatchProjectsRequest(), metadata=auth)
    await _until_ready(stream)
    assert app.state.services.get(HUB).subscriber_count == 1
    stream.cancel()
    await _no_subscribers(app)
    timed = stubs.projects.WatchProjects(S.WatchProjectsRequest(), metadata=auth, timeout=1)
    await _until_ready(timed)
    assert (await _until_closed(timed)).code() == grpc.StatusCode.DEADLINE_EXCEEDED
    await _no_subscribers(app)


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    # Frequent heartbeats: a revoked session ends the stream within one.
    return make_settings(ws_heartbeat_seconds=0.2)


async def test_a_revoked_session_ends_the_stream_unauthenticated(
    client: httpx.AsyncClient, stubs: Stubs
) -> None:
    user = await register_user(client)
    stream = stubs.projects.WatchProjects(
        S.WatchProjectsRequest(), metadata=bearer(user.access_token)
    )
    await _until_ready(stream)
    response = await client.post("/api/v1/auth/logout", json={"refreshToken": user.refresh_token})
    assert response.status_code == 204
    assert (await _until_closed(stream)).code() == grpc.StatusCode.UNAUTHENTICATED


async def test_shutdown_ends_streams_unavailable_so_clients_resume(
    make_settings: Callable[..., Settings],
) -> None:
    port = free_port()
    application = create_app(make_settings(grpc_port=port, grpc_host="127.0.0.1"))
    stubs = open_stubs(port)
    try:
        async with LifespanManager(application, startup_timeout=30, shutdown_timeout=30):
            transport = httpx.ASGITransport(app=application, client=("203.0.113.30", 5000))
            async with httpx.AsyncClient(transport=transport, base_url="http://keel.test") as http:
                user = await register_user(http)
            stream = stubs.projects.WatchProjects(
                S.WatchProjectsRequest(), metadata=bearer(user.access_token)
            )
            await _until_ready(stream)
        ended = await _until_closed(stream)
        assert ended.code() == grpc.StatusCode.UNAVAILABLE
        assert rich_status(ended)["reason"] == "GOING_AWAY"
    finally:
        await stubs.channel.close()


@pytest.fixture
def two_instances(settings: Settings, tmp_path: Path) -> Iterator[tuple[Server, Server, int]]:
    """Two `python -m keel serve` processes on one database; the second also serves gRPC."""
    grpc_port = free_port()
    with ExitStack() as stack:
        # With Redis the safety-net poll is slow, so prompt delivery proves the bus did it.
        env = _server_env(settings, poll_seconds=30 if settings.redis_url else 0.2)
        first = stack.enter_context(run_server(env, log_dir=tmp_path))
        second = stack.enter_context(
            run_server({**env, "KEEL_GRPC_PORT": str(grpc_port)}, log_dir=tmp_path)
        )
        yield first, second, grpc_port


async def test_rest_commit_on_one_process_reaches_a_stream_on_another(
    two_instances: tuple[Server, Server, int],
) -> None:
    first, _second, grpc_port = two_instances
    stubs = open_stubs(grpc_port)
    try:
        async with httpx.AsyncClient(base_url=first.url, timeout=10) as http:
            user = await register_user(http)
            stream = stubs.projects.WatchProjects(
                S.WatchProjectsRequest(), metadata=bearer(user.access_token)
            )
            await _until_ready(stream)
            created = await _create(http, user, "Across processes")
            event = (await _next(stream)).event
            assert event.type == S.PROJECT_EVENT_TYPE_CREATED
            assert event.project.name == f"projects/{created['id']}"
            stream.cancel()
    finally:
        await stubs.channel.close()
