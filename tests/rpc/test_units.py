"""The pieces of the gRPC front door that a real client cannot drive on demand: the overload
guard at capacity, unexpected errors, a busy database pool, and settings."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from sqlalchemy.exc import TimeoutError as PoolTimeout

from keel.platform.errors import ServiceUnavailable
from keel.platform.security import TokenCodec
from keel.rpc import calls
from keel.rpc.calls import Call, peer_ip
from keel.rpc.errors import failure_of
from keel.rpc.interceptors import ObservabilityInterceptor, ProtectionInterceptor
from keel.settings import Settings


async def test_overload_guard_refuses_unary_calls_beyond_capacity() -> None:
    guard = ProtectionInterceptor(
        limiter=None,
        tokens=TokenCodec(algorithm="HS256", secret="s" * 40, issuer="keel"),
        max_concurrency=1,
    )
    started, release = asyncio.Event(), asyncio.Event()

    async def slow(request: object, context: object) -> str:
        started.set()
        await release.wait()
        return "done"

    calls.begin(Call(method="/keel.v1.ProjectService/GetProject", request_id="r1"))
    wrapped = guard.unary(slow)
    first = asyncio.create_task(wrapped(None, None))
    await started.wait()
    with pytest.raises(ServiceUnavailable) as caught:
        await wrapped(None, None)
    assert caught.value.code == "OVERLOADED"
    failure = failure_of(caught.value)
    assert failure.code == grpc.StatusCode.UNAVAILABLE
    assert ("retry-after", "1") in failure.status.trailing_metadata
    release.set()
    assert await first == "done"
    assert guard.in_flight == 0


def test_unexpected_errors_are_internal_without_internals() -> None:
    observe = ObservabilityInterceptor()
    call = Call(method="/keel.v1.ProjectService/GetProject", request_id="req-7")
    failure = observe._failure(call, RuntimeError("password=hunter2 at db.py:12"))
    assert failure.code == grpc.StatusCode.INTERNAL
    assert failure.message == "Internal server error (request id req-7)"
    busy = observe._failure(call, PoolTimeout("QueuePool limit reached"))
    assert busy.code == grpc.StatusCode.UNAVAILABLE


def test_peer_addresses_and_call_names() -> None:
    assert peer_ip("ipv4:10.0.0.7:5123") == "10.0.0.7"
    assert peer_ip("ipv6:[::1]:5123") == "::1"
    assert peer_ip("unix:/tmp/socket") is None
    call = Call(method="/keel.v1.AuthService/Login", request_id="r")
    assert (call.service, call.name) == ("keel.v1.AuthService", "Login")
    assert Call(method="bogus", request_id="r").service == "unknown"


def test_an_empty_grpc_port_means_no_grpc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEL_GRPC_PORT", "")
    monkeypatch.setenv("KEEL_GRPC_HOST", "")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.grpc_port is None
    assert settings.grpc_host is None
    monkeypatch.setenv("KEEL_GRPC_PORT", "50051")
    assert Settings(_env_file=None).grpc_port == 50051  # type: ignore[call-arg]
