"""gRPC fixtures: the app with its gRPC port open, and real grpc.aio clients to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from google.rpc import error_details_pb2, status_pb2

from keel.app import create_app
from keel.settings import Settings
from keel.v1 import auth_service_pb2_grpc, project_service_pb2_grpc
from tests.servers import free_port


@dataclass
class Stubs:
    channel: grpc.aio.Channel
    auth: auth_service_pb2_grpc.AuthServiceStub
    projects: project_service_pb2_grpc.ProjectServiceStub


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


@pytest.fixture
def grpc_port() -> int:
    return free_port()


@pytest.fixture
async def app(settings: Settings, grpc_port: int) -> AsyncIterator[FastAPI]:
    """The same app as everywhere (its `settings` fixture), also serving gRPC on grpc_port."""
    serving = settings.model_copy(update={"grpc_port": grpc_port, "grpc_host": "127.0.0.1"})
    application = create_app(serving)
    async with LifespanManager(application, startup_timeout=30, shutdown_timeout=30):
        yield application


def open_stubs(port: int, **options: Any) -> Stubs:
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=list(options.items()))
    return Stubs(
        channel=channel,
        auth=auth_service_pb2_grpc.AuthServiceStub(channel),
        projects=project_service_pb2_grpc.ProjectServiceStub(channel),
    )


@pytest.fixture
async def stubs(app: FastAPI, grpc_port: int) -> AsyncIterator[Stubs]:
    opened = open_stubs(grpc_port)
    try:
        yield opened
    finally:
        await opened.channel.close()


async def rpc_error(call: Any, code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    """Await a call that must fail with `code`; the error, for a closer look."""
    # Any: a grpc.aio call object (awaitable).
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == code, caught.value.details()
    return caught.value


def rich_status(error: grpc.aio.AioRpcError) -> dict[str, Any]:
    """The google.rpc details of a failed call: ErrorInfo reason, field violations, retry."""
    found: dict[str, Any] = {"reason": None, "violations": {}, "retry_seconds": None}
    for key, value in error.trailing_metadata() or ():
        if key != "grpc-status-details-bin":
            continue
        status = status_pb2.Status.FromString(value)
        assert status.code == error.code().value[0]
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                found["reason"] = info.reason
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                found["violations"] = {v.field: v.description for v in bad.field_violations}
            elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                retry = error_details_pb2.RetryInfo()
                detail.Unpack(retry)
                found["retry_seconds"] = retry.retry_delay.seconds
    return found


def trailer(error: grpc.aio.AioRpcError, key: str) -> str | None:
    for name, value in error.trailing_metadata() or ():
        if name == key:
            return str(value)
    return None
