"""create_app(settings): the only place that wires Keel's parts together."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import structlog
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from redis.asyncio import BlockingConnectionPool, Redis

from keel.account import routes as account_routes
from keel.audit import routes as audit_routes
from keel.backup.service import BackupSchedule
from keel.console import routes as console_routes
from keel.graphql import routes as graphql_routes
from keel.identity import email_routes, oidc_routes
from keel.identity import routes as identity_routes
from keel.identity.oidc import OIDC, OidcClients
from keel.identity.service import IDENTITY, Identity
from keel.jobs.engine import JOBS, JobEngine
from keel.mail.outbox import MAILER, Mailer
from keel.models import Base
from keel.platform import health, metrics
from keel.platform.auth import AUTHENTICATOR
from keel.platform.bus import InProcessBus, RedisBus
from keel.platform.cache import Cache, MemoryCache
from keel.platform.db import Database
from keel.platform.errors import install_error_handlers
from keel.platform.gc_tuning import tune_for_serving
from keel.platform.host_slots import HostSlots
from keel.platform.http import PlatformMiddleware
from keel.platform.lifecycle import InFlightMiddleware, Lifecycle
from keel.platform.logging import configure_logging
from keel.platform.ratelimit import ProtectionMiddleware, RateLimiter
from keel.platform.replica import WriteFence
from keel.platform.security import (
    Encryptor,
    PasswordHasher,
    TokenCodec,
    derive_key,
    load_signing_key,
)
from keel.platform.services import Services
from keel.platform.shortcuts import Shortcuts
from keel.platform.tiered_cache import TieredCache
from keel.projects import routes as project_routes
from keel.projects.service import PROJECTS, ProjectsRuntime
from keel.projects.shortcut import ProjectShortcuts
from keel.realtime import routes as realtime_routes
from keel.realtime.hub import HUB, EventHub
from keel.realtime.tickets import TICKETS, create_ticket_store
from keel.rpc.server import start_grpc
from keel.settings import Settings, load_settings
from keel.webhooks import routes as webhook_routes
from keel.webhooks.dispatch import DISPATCHER, Dispatcher
from keel.webhooks.service import WEBHOOKS, WebhooksRuntime

if TYPE_CHECKING:
    from keel.platform.tracing import Tracing

log = structlog.get_logger("keel.app")

API_DESCRIPTION = """
Keel: sign-up and login, projects, and live updates for web and mobile front ends.

Every error has one shape: `{"error", "code", "details", "timestamp", "path"}`.
Authenticate with `Authorization: Bearer <accessToken>`.
"""


def create_redis(settings: Settings) -> Redis | None:
    """The one Redis client (None when not configured), shared by cache, limiter and bus.

    A *blocking* pool: at more concurrent requests than connections, callers wait up to the
    timeout for a free connection instead of failing (see docs/field-notes.md).
    """
    if not settings.redis_url:
        return None
    pool = BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.redis_max_connections,
        timeout=settings.redis_timeout_seconds,
        socket_timeout=settings.redis_timeout_seconds,
        socket_connect_timeout=settings.redis_timeout_seconds,
    )
    return Redis(connection_pool=pool)


def _without_default_422(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """FastAPI documents a 422 `HTTPValidationError` on every route; Keel answers validation
    failures with 400 and the error envelope instead, so that 422 would be a false promise."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    responses = operation.get("responses", {})
                    ref = str(responses.get("422", {}).get("content", {}))
                    if "HTTPValidationError" in ref:
                        del responses["422"]
            components = schema.get("components", {}).get("schemas", {})
            for name in ("HTTPValidationError", "ValidationError"):
                components.pop(name, None)
            app.openapi_schema = schema
        return app.openapi_schema

    return openapi


def _operation_id(route: APIRoute) -> str:
    """operationId = the handler's name (`list_projects`), so generated clients get short,
    stable method names instead of FastAPI's `list_projects_api_v1_projects_get`."""
    return route.name


SHUTDOWN_STEP_SECONDS = 5.0


async def _bounded(step: str, closing: Awaitable[object]) -> None:
    """Run one shutdown step for at most SHUTDOWN_STEP_SECONDS. It runs as a task of its own
    and is waited for with asyncio.wait, so a step that swallows its cancellation (it waits
    on, for ever) cannot hold up the rest of the shutdown: it is cancelled and left behind."""
    task = asyncio.ensure_future(closing)
    done, _ = await asyncio.wait({task}, timeout=SHUTDOWN_STEP_SECONDS)
    if not done:
        task.cancel()
        log.warning("shutdown_step_timed_out", step=step, seconds=SHUTDOWN_STEP_SECONDS)
        return
    task.result()  # a step's own error goes on, as before


def build_services(settings: Settings) -> Services:
    """Every part of the app, wired once: platform parts as fields, features' under slots."""
    database = Database.from_settings(settings)
    database.observe_statement = metrics.instrument_engine(
        database.primary, tables=frozenset(Base.metadata.tables)
    )
    redis = create_redis(settings)
    database.fence = WriteFence(redis)  # read-your-writes across instances (replica reads)
    l1 = MemoryCache(max_items=settings.cache_l1_max_items, ttl=settings.cache_l1_ttl_seconds)
    cache: Cache = (
        TieredCache(redis=redis, l1=l1, l2_ttl=settings.cache_l2_ttl_seconds)
        if redis is not None
        else l1
    )
    limiter = RateLimiter.from_settings(settings, redis) if settings.rate_limit_enabled else None
    services = Services(
        settings=settings,
        database=database,
        cache=cache,
        redis=redis,
        bus=RedisBus(redis) if redis is not None else InProcessBus(),
        limiter=limiter,
        tokens=TokenCodec(
            algorithm=settings.jwt_algorithm,
            secret=settings.signing_secret,
            issuer=settings.jwt_issuer,
            private_key=load_signing_key(
                algorithm=settings.jwt_algorithm,
                key_file=settings.jwt_private_key_file,
                data_dir=settings.data_dir,
            ),
        ),
        hasher=PasswordHasher(
            memory_kib=settings.argon2_memory_kib,
            time_cost=settings.argon2_time_cost,
            parallelism=settings.argon2_parallelism,
            pool_size=settings.hash_pool_size,
            queue_timeout=settings.hash_queue_timeout_seconds,
            # Shared by the workers of `keel serve --workers N`: the bound is the host's.
            host_slots=HostSlots.in_folder(
                settings.data_dir / "hash-slots", settings.hash_pool_size
            ),
        ),
        encryptor=Encryptor(derive_key(settings.signing_secret, b"aes-256-gcm-at-rest")),
        lifecycle=Lifecycle(
            delay_seconds=settings.shutdown_delay_seconds,
            timeout_seconds=settings.shutdown_timeout_seconds,
        ),
    )
    services.readiness_probes["database"] = database.ping
    if redis is not None:
        services.readiness_probes["redis"] = redis.ping
        if limiter is not None:
            services.readiness_probes["rate_limit"] = limiter.probe
    identity = Identity(
        settings=settings,
        hasher=services.hasher,
        tokens=services.tokens,
        database=database,
        encryptor=services.encryptor,
        cache=cache,
        redis=redis,
    )
    services.provide(IDENTITY, identity)
    services.provide(AUTHENTICATOR, identity)
    services.provide(OIDC, OidcClients(settings))
    services.provide(PROJECTS, ProjectsRuntime.from_settings(settings, cache=cache))
    hub = EventHub(database=database, bus=services.bus, settings=settings)
    services.provide(HUB, hub)
    services.lifecycle.on_drain(hub.drain, name="realtime")
    services.provide(
        TICKETS,
        create_ticket_store(
            redis=redis,
            sessions=database.sessions,
            encryptor=services.encryptor,
            ttl_seconds=settings.sse_ticket_ttl_seconds,
        ),
    )
    jobs = JobEngine(settings=settings, database=database)
    services.provide(JOBS, jobs)
    services.provide(
        MAILER, Mailer.wire(settings=settings, encryptor=services.encryptor, jobs=jobs)
    )
    webhooks = WebhooksRuntime(settings=settings, encryptor=services.encryptor)
    services.provide(WEBHOOKS, webhooks)
    services.provide(DISPATCHER, Dispatcher.wire(database=database, runtime=webhooks, jobs=jobs))
    return services


async def start_services(services: Services) -> None:
    if isinstance(services.cache, TieredCache):
        await services.cache.start()
    await services.get(HUB).start()
    await services.get(JOBS).start()
    await services.get(DISPATCHER).start()


async def stop_services(services: Services) -> None:
    """Each step is bounded: a stuck close (a Redis reader, a pool) must not hang the whole
    shutdown, and the log names the step that overran."""
    await _bounded("webhooks", services.get(DISPATCHER).stop())
    await _bounded("jobs", services.get(JOBS).stop())
    await _bounded("realtime", services.get(HUB).stop())
    await close_services(services)


async def close_services(services: Services) -> None:
    """Close the connections of services that were built but maybe never started (CLI)."""
    await _bounded("bus", services.bus.close())
    await _bounded("cache", services.cache.close())
    if services.redis is not None:
        await _bounded("redis", services.redis.aclose())
    services.hasher.close()
    await _bounded("database", services.database.dispose())


def enable_tracing(app: FastAPI, services: Services) -> Tracing | None:
    """OpenTelemetry spans when KEEL_OTEL_EXPORTER_OTLP_ENDPOINT is set (imported only then)."""
    settings = services.settings
    if not settings.otel_exporter_otlp_endpoint:
        return None
    from keel.platform.tracing import Tracing

    tracing = Tracing(
        endpoint=settings.otel_exporter_otlp_endpoint, service_name=settings.otel_service_name
    )
    tracing.instrument(app, engines=[services.database.primary])
    services.database.direct_statements = False  # SQL spans hang on SQLAlchemy's events
    return tracing


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    services = build_services(settings)
    tracing: Tracing | None = None  # set once the app exists; flushed after the services stop

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        log.info("startup", database=services.database.dialect, redis=bool(settings.redis_url))
        await start_services(services)
        services.lifecycle.install_signal_hook()
        backups = BackupSchedule(settings).start()  # the jobs engine (§10) takes this over
        rpc = await start_grpc(services)
        undo_gc = tune_for_serving() if settings.gc_tuning else None
        try:
            yield
        finally:
            if undo_gc is not None:
                undo_gc()
            await services.lifecycle.drain()
            services.lifecycle.remove_signal_hook()
            if rpc is not None:
                await _bounded("grpc", rpc.stop())
            await _bounded("backups", backups.stop())
            metrics.mark_worker_dead()
            await stop_services(services)
            if tracing is not None:  # exporting the last spans blocks: not on the loop
                await _bounded("tracing", asyncio.to_thread(tracing.shutdown))
            log.info("shutdown")

    app = FastAPI(
        title="Keel",
        version="0.1.0",
        description=API_DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        generate_unique_id_function=_operation_id,
    )
    app.state.services = services

    install_error_handlers(app)
    # Routes are matched in order, one by one: the hottest (projects, sign-in) come first.
    app.include_router(project_routes.router)
    app.include_router(identity_routes.router)
    app.include_router(health.router)
    app.include_router(email_routes.router)
    app.include_router(oidc_routes.router)
    app.include_router(account_routes.router)
    app.include_router(identity_routes.users_router)
    app.include_router(identity_routes.jwks_router)
    app.include_router(audit_routes.router)
    app.include_router(realtime_routes.router)
    app.include_router(console_routes.router)
    app.include_router(graphql_routes.create_router(services))
    app.include_router(webhook_routes.router)

    # Innermost: the hottest routes' plain cases, without FastAPI's router (docs/adr/0022).
    app.add_middleware(Shortcuts, shortcuts=ProjectShortcuts(services).shortcuts())
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=True,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "If-Match",
                "If-None-Match",
                "Idempotency-Key",
                "X-Request-ID",
                "Last-Event-ID",
            ],
            expose_headers=[
                "ETag",
                "Location",
                "X-Request-ID",
                "Retry-After",
                "RateLimit-Limit",
                "RateLimit-Remaining",
                "RateLimit-Reset",
                "Idempotent-Replayed",
            ],
        )
    # Added last = runs first: request id and headers, then metrics, then protection.
    app.add_middleware(
        ProtectionMiddleware, settings=settings, tokens=services.tokens, limiter=services.limiter
    )
    app.add_middleware(metrics.MetricsMiddleware)
    app.add_middleware(
        PlatformMiddleware,
        max_body_bytes=settings.max_body_bytes,
        hsts_max_age=settings.hsts_max_age,
    )
    app.add_middleware(InFlightMiddleware, lifecycle=services.lifecycle)
    app.openapi = _without_default_422(app)  # type: ignore[method-assign]
    tracing = enable_tracing(app, services)
    return app


def app_factory() -> FastAPI:
    """Entry point for `uvicorn --factory keel.app:app_factory` (settings from the env)."""
    return create_app()
