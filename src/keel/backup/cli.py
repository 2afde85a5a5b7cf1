"""`python -m keel backup create | inspect | verify | restore` (SPEC §12)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from keel.backup import service
from keel.backup.archive import BackupError
from keel.settings import ConfigurationError, Settings, load_settings

app = typer.Typer(help="Backups: create, inspect, verify and restore.", no_args_is_help=True)

T = TypeVar("T")

IdentityOption = Annotated[
    Path | None,
    typer.Option("--identity", "-i", help="age identity file (for an encrypted backup)"),
]
FileArgument = Annotated[str, typer.Argument(help="Backup file path or s3://bucket/key URL")]


def _settings() -> Settings:
    try:
        return load_settings()
    except (ConfigurationError, ValueError) as exc:
        typer.echo(f"configuration error: {exc}", err=True)
        raise typer.Exit(2) from exc


def _run(work: Coroutine[object, object, T]) -> T:
    """Run one command; a refusal exits 2, a failed check or operation exits 1."""
    try:
        return asyncio.run(work)
    except service.BackupRefused as exc:
        typer.echo(f"refused: {exc}", err=True)
        raise typer.Exit(2) from exc
    except BackupError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


async def _progress(table: str, rows: int) -> None:
    typer.echo(f"{table}: {rows} rows", err=True)


@app.command()
def create(
    to: Annotated[
        str | None,
        typer.Option("--to", help="Directory or s3://bucket/prefix (KEEL_BACKUP_TARGET)"),
    ] = None,
) -> None:
    """Take a consistent backup while Keel runs; the last line printed is its path or URL."""
    settings = _settings()
    result = _run(service.create_backup(settings, to=to, progress=_progress))
    if result.unencrypted_warning:
        typer.echo(
            "warning: this backup is NOT encrypted (set KEEL_BACKUP_RECIPIENTS); "
            "production refuses to write one",
            err=True,
        )
    typer.echo(result.location)


@app.command()
def inspect(file: FileArgument, identity: IdentityOption = None) -> None:
    """Print the manifest as one line of JSON (after checking the hash)."""
    manifest = _run(service.inspect_backup(file, settings=_settings(), identity=identity))
    typer.echo(json.dumps(manifest.to_json(), separators=(",", ":")))


@app.command()
def verify(file: FileArgument, identity: IdentityOption = None) -> None:
    """Check hash, decryption and a trial restore into a scratch database; exit 0 if all hold."""
    result = _run(service.verify_backup(file, settings=_settings(), identity=identity))
    typer.echo(f"ok: {sum(result.row_counts.values())} rows restored in a trial run")
    typer.echo(json.dumps(result.manifest.to_json(), separators=(",", ":")))


@app.command()
def restore(
    file: FileArgument,
    identity: IdentityOption = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace a database that holds users or projects")
    ] = False,
) -> None:
    """Restore into the configured database (stop every instance first), then migrate."""
    settings = _settings()
    result = _run(service.restore_backup(file, settings=settings, identity=identity, force=force))
    typer.echo(f"restored {sum(result.row_counts.values())} rows into the configured database")
    typer.echo(json.dumps(result.manifest.to_json(), separators=(",", ":")))
