"""Command line: python -m keel serve | migrate | openapi | create-admin | purge."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
import uvicorn

from keel import migrations
from keel.backup import cli as backup_cli
from keel.jobs.cli import jobs_cli
from keel.settings import ConfigurationError, Settings, load_settings

if TYPE_CHECKING:
    from keel.platform.services import Services

T = TypeVar("T")

cli = typer.Typer(help="Keel: a backend for project tracking.", no_args_is_help=True)
cli.add_typer(backup_cli.app, name="backup")


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigurationError as exc:
        typer.echo(f"configuration error: {exc}", err=True)
        raise typer.Exit(2) from exc
    except ValueError as exc:  # pydantic's ValidationError for a malformed variable
        typer.echo(f"configuration error: {exc}", err=True)
        raise typer.Exit(2) from exc


def _with_services(settings: Settings, work: Callable[[Services], Awaitable[T]]) -> T:
    """Run one CLI job with the app's own wiring (so caches are invalidated as a request
    would), then close every connection it opened."""
    from keel.app import build_services, close_services

    async def run() -> T:
        services = build_services(settings)
        try:
            return await work(services)
        finally:
            await close_services(services)

    return asyncio.run(run())


@cli.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (KEEL_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (KEEL_PORT)")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes (KEEL_WORKERS)")] = None,
) -> None:
    """Serve the API (migrating first in the embedded shape)."""
    settings = _settings()
    # Resolve the secret once here, so every worker reads the same generated file.
    _ = settings.signing_secret
    if settings.should_auto_migrate:
        migrations.upgrade(settings.effective_database_url)
    from keel.platform.metrics import prepare_multiprocess

    # Before the workers start, so each of them writes its samples where /metrics reads them.
    prepare_multiprocess(workers or settings.workers)
    from keel.platform.server import server_options

    uvicorn.run(
        "keel.app:app_factory",
        factory=True,
        host=host or settings.host,
        port=port if port is not None else settings.port,
        workers=workers or settings.workers,
        log_config=None,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=round(settings.shutdown_timeout_seconds),
        lifespan="on",
        **server_options(settings),
    )


@cli.command()
def migrate(
    revision: Annotated[str, typer.Argument(help="Target revision")] = "head",
    down: Annotated[bool, typer.Option("--down", help="Downgrade to REVISION")] = False,
) -> None:
    """Apply (or with --down, revert) database migrations."""
    settings = _settings()
    if down:
        migrations.downgrade(settings.effective_database_url, revision)
    else:
        migrations.upgrade(settings.effective_database_url, revision)
    typer.echo(f"database at {'revision ' + revision if down else 'head'}")


@cli.command()
def openapi(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write")] = None,
) -> None:
    """Print (or write) the OpenAPI schema."""
    from keel.app import create_app

    schema = create_app(_settings()).openapi()
    text = json.dumps(schema, indent=2, sort_keys=False)
    if output:
        output.write_text(text + "\n")
    else:
        typer.echo(text)


@cli.command()
def purge(
    batch: Annotated[int, typer.Option(min=1, help="Rows deleted per transaction")] = 1000,
) -> None:
    """Delete soft-deleted projects past KEEL_SOFT_DELETE_RETENTION_DAYS, and expired
    idempotency keys."""
    from keel.projects.purge import purge_all_expired

    settings = _settings()
    retention = timedelta(days=settings.soft_delete_retention_days)
    counts = _with_services(
        settings,
        lambda services: purge_all_expired(services.database, retention=retention, batch=batch),
    )
    typer.echo(f"purged {counts.projects} projects and {counts.idempotency_keys} idempotency keys")


@cli.command("purge-events")
def purge_events() -> None:
    """Delete realtime events older than KEEL_EVENTS_RETENTION_SECONDS and expired SSE
    tickets (every instance also does this in the background)."""
    import asyncio

    from keel.realtime.hub import purge_with_settings

    removed = asyncio.run(purge_with_settings(_settings()))
    typer.echo(f"purged {removed} events")


@cli.command("create-admin")
def create_admin(
    email: Annotated[str, typer.Option(help="Email of the administrator")],
    password: Annotated[
        str, typer.Option(help="Password for a new account (an existing one keeps its own)")
    ],
    name: Annotated[str, typer.Option(help="Display name for a new account")] = "Administrator",
) -> None:
    """Create an administrator, or promote (and reactivate) an existing user. Idempotent."""
    settings = _settings()
    if settings.should_auto_migrate:
        migrations.upgrade(settings.effective_database_url)
    try:
        message = run_create_admin(settings, email=email, password=password, name=name)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(message)


def run_create_admin(settings: Settings, *, email: str, password: str, name: str) -> str:
    """Validate like registration (ValueError names each problem), then create or promote."""
    from keel.identity import cli as identity_cli
    from keel.identity.service import IDENTITY

    data = identity_cli.validate_admin(email=email, password=password, name=name)
    return _with_services(
        settings, lambda services: identity_cli.create_admin(services.get(IDENTITY), data)
    )


@cli.command("purge-sessions")
def purge_sessions() -> None:
    """Delete refresh-token session rows whose whole family has expired."""
    from keel.identity.cli import purge_sessions as run

    removed = _with_services(_settings(), lambda services: run(services.database))
    typer.echo(f"purged {removed} expired session rows")


cli.add_typer(jobs_cli, name="jobs")


def main() -> None:
    cli()
