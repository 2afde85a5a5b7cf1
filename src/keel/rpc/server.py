"""The gRPC server: built, started and stopped inside the app's lifespan when KEEL_GRPC_PORT
is set, in the same process (and event loop) as HTTP."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from keel.platform.auth import AUTHENTICATOR
from keel.platform.services import Services
from keel.rpc.auth import AuthServicer
from keel.rpc.interceptors import (
    AuthenticationInterceptor,
    ObservabilityInterceptor,
    ProtectionInterceptor,
)
from keel.rpc.projects import ProjectServicer
from keel.v1 import (
    auth_service_pb2,
    auth_service_pb2_grpc,
    project_service_pb2,
    project_service_pb2_grpc,
)

log = structlog.get_logger("keel.grpc")

SERVICE_NAMES = (
    auth_service_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name,
    project_service_pb2.DESCRIPTOR.services_by_name["ProjectService"].full_name,
)
STOP_GRACE_SECONDS = 5.0


@dataclass(eq=False)
class RpcServer:
    """A started gRPC server and what its shutdown needs."""

    server: Any  # grpc.aio.Server (grpcio ships no type hints)
    health: health.aio.HealthServicer
    port: int
    projects: ProjectServicer
    _stopped: bool = field(default=False, init=False)

    async def stop(self) -> None:
        """Say NOT_SERVING, end open streams with UNAVAILABLE (clients reconnect elsewhere and
        resume), then let unary calls in flight finish within the grace period."""
        if self._stopped:
            return
        self._stopped = True
        await self.health.enter_graceful_shutdown()
        self.projects.end_streams()
        await self.server.stop(STOP_GRACE_SECONDS)
        log.info("grpc_stopped", port=self.port)


def _options(services: Services) -> list[tuple[str, Any]]:
    # Any: grpc channel argument values (int or str).
    settings = services.settings
    return [
        # The same limit as REST bodies: a larger message is RESOURCE_EXHAUSTED.
        ("grpc.max_receive_message_length", settings.max_body_bytes),
        # With `serve --workers N` every worker binds the port; the kernel spreads
        # connections over them (grpc's default on Linux, set here to say so).
        ("grpc.so_reuseport", 1),
        # Keep idle streams alive through proxies, and notice dead clients.
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
    ]


async def start_grpc(services: Services) -> RpcServer | None:
    """Start serving gRPC on KEEL_GRPC_HOST:KEEL_GRPC_PORT; None when no port is set."""
    settings = services.settings
    if settings.grpc_port is None:
        return None
    server = grpc.aio.server(
        interceptors=[
            ObservabilityInterceptor(),
            ProtectionInterceptor(
                limiter=services.limiter if settings.rate_limit_enabled else None,
                tokens=services.tokens,
                # No line to wait in here: the served ones and those REST would queue.
                max_concurrency=settings.overload_max_concurrency + settings.overload_queue_size,
            ),
            AuthenticationInterceptor(services.get(AUTHENTICATOR)),
        ],
        options=_options(services),
    )
    projects = ProjectServicer(services)
    # Untyped: generated registration functions.
    auth_service_pb2_grpc.add_AuthServiceServicer_to_server(AuthServicer(services), server)  # type: ignore[no-untyped-call]
    project_service_pb2_grpc.add_ProjectServiceServicer_to_server(projects, server)  # type: ignore[no-untyped-call]
    checks = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checks, server)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    host = settings.grpc_host or settings.host
    port = server.add_insecure_port(f"{host}:{settings.grpc_port}")
    await server.start()
    for name in ("", *SERVICE_NAMES):
        await checks.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("grpc_started", host=host, port=port)
    return RpcServer(server=server, health=checks, port=port, projects=projects)
