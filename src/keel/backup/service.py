"""Backup, inspect, verify and restore; scheduled backups with retention on one instance."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import structlog
from prometheus_client import Counter, Gauge
from pyrage import x25519
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from keel import migrations
from keel.audit.service import record_detached
from keel.backup import database as db
from keel.backup.archive import (
    ArchiveReader,
    ArchiveWriter,
    BackupError,
    Manifest,
    parse_recipients,
    read_manifest,
)
from keel.backup.targets import backup_name, fetch_local, open_target, taken_at
from keel.platform.actor import RequestContext
from keel.platform.metrics import REGISTRY
from keel.settings import Env, Settings

log = structlog.get_logger("keel.backup")

KEEL_VERSION = "0.1.0"
# pg_try_advisory_lock key: one scheduled backup at a time across every instance.
ADVISORY_LOCK_KEY = 0x6B65656C_6261636B  # "keelback"

LAST_SUCCESS = Gauge(
    "backup_last_success_timestamp_seconds",
    "Unix time of the last successful backup (alert on time() minus this)",
    registry=REGISTRY,
    multiprocess_mode="max",
)
BACKUP_RUNS = Counter(
    "backup_runs", "Backups attempted, by outcome", ["outcome"], registry=REGISTRY
)


class BackupRefused(BackupError):
    """The operation would be unsafe as asked (unencrypted in production, a non-empty target)."""


@dataclass(frozen=True, slots=True)
class BackupResult:
    location: str
    manifest: Manifest
    size: int
    unencrypted_warning: bool


async def _audit(
    engine: AsyncEngine, *, action: str, outcome: str, target: str, details: dict[str, object]
) -> None:
    await record_detached(
        async_sessionmaker(engine, expire_on_commit=False),
        action=action,
        context=RequestContext(),
        target_type="backup",
        target_id=target[-64:],
        outcome=outcome,
        details=details,
    )


def _recipients(settings: Settings) -> list[x25519.Recipient]:
    recipients = parse_recipients(settings.backup_recipients)
    if not recipients and settings.env is Env.production:
        raise BackupRefused(
            "production refuses to write an unencrypted backup: set KEEL_BACKUP_RECIPIENTS "
            "to one or more age public keys"
        )
    return recipients


async def create_backup(
    settings: Settings, *, to: str | None = None, progress: db.Progress | None = None
) -> BackupResult:
    """Take a consistent snapshot while Keel serves, write one file, store it at the target."""
    recipients = _recipients(settings)
    target = open_target(to, settings)
    created = datetime.now(UTC)
    name = backup_name(created, encrypted=bool(recipients))
    engine = db.open_engine(settings.effective_database_url)
    scratch = None if target.staging_dir() is not None else Path(tempfile.mkdtemp("keel-backup"))
    staged = (scratch or target.staging_dir() or Path()) / f".{name}.partial"
    try:
        try:
            manifest = await _write_snapshot(
                engine, staged=staged, recipients=recipients, created=created, progress=progress
            )
            size = staged.stat().st_size
            location = await target.store(staged, name)
        except BaseException as exc:
            BACKUP_RUNS.labels("failure").inc()
            with contextlib.suppress(Exception):  # the database may be what failed
                await _audit(
                    engine,
                    action="backup.create",
                    outcome="failure",
                    target=name,
                    details={"error": type(exc).__name__},
                )
            raise
        finally:
            staged.unlink(missing_ok=True)
            if scratch is not None:
                scratch.rmdir()
        await _audit(
            engine,
            action="backup.create",
            outcome="success",
            target=name,
            details={"location": location, "bytes": size, "encrypted": manifest.encrypted},
        )
    finally:
        await engine.dispose()
    BACKUP_RUNS.labels("success").inc()
    LAST_SUCCESS.set(created.timestamp())
    log.info("backup_created", location=location, bytes=size, rows=manifest.row_counts)
    return BackupResult(
        location=location, manifest=manifest, size=size, unencrypted_warning=not recipients
    )


async def _write_snapshot(
    engine: AsyncEngine,
    *,
    staged: Path,
    recipients: list[x25519.Recipient],
    created: datetime,
    progress: db.Progress | None,
) -> Manifest:
    with staged.open("wb") as out:
        writer = ArchiveWriter(out, recipients=recipients)
        try:
            async with db.snapshot(engine) as conn:
                revision = await db.current_revision(conn)
                if revision != db.head_revision():
                    raise BackupError(
                        f"the database is at schema revision {revision}, this Keel expects "
                        f"{db.head_revision()}: run `python -m keel migrate` first"
                    )
                await asyncio.to_thread(
                    writer.write_header,
                    keel_version=KEEL_VERSION,
                    schema_revision=revision,
                    created_at=created.isoformat().replace("+00:00", "Z"),
                )
                await db.dump(conn, writer, progress=progress)
            return await asyncio.to_thread(writer.finish)
        except BaseException:
            with contextlib.suppress(Exception):
                writer.close()
            raise


@contextlib.asynccontextmanager
async def _local_copy(location: str, settings: Settings) -> AsyncIterator[Path]:
    with tempfile.TemporaryDirectory(prefix="keel-restore") as scratch:
        yield await fetch_local(location, settings=settings, scratch=Path(scratch))


def _identities(identity: Path | None) -> list[x25519.Identity] | None:
    from keel.backup.archive import load_identities

    return load_identities(identity) if identity is not None else None


async def inspect_backup(
    location: str, *, settings: Settings, identity: Path | None = None
) -> Manifest:
    """The manifest, after checking decryption, the hash and the row counts."""
    identities = _identities(identity)
    async with _local_copy(location, settings) as path:
        return await asyncio.to_thread(read_manifest, path, identities=identities)


@dataclass(frozen=True, slots=True)
class RestoreResult:
    manifest: Manifest
    row_counts: dict[str, int]


async def restore_backup(
    location: str,
    *,
    settings: Settings,
    identity: Path | None = None,
    force: bool = False,
    database_url: str | None = None,
    audit: bool = True,
) -> RestoreResult:
    """Restore into the configured database (or `database_url`), then migrate it to head."""
    identities = _identities(identity)
    url = database_url or settings.effective_database_url
    async with _local_copy(location, settings) as path:
        # A full pass first: never empty a database for a file that turns out to be damaged.
        manifest = await asyncio.to_thread(read_manifest, path, identities=identities)
        if not db.is_known_revision(manifest.schema_revision):
            raise BackupRefused(
                f"the backup's schema revision {manifest.schema_revision} is newer than this "
                f"Keel knows (head {db.head_revision()}): restore it with a newer Keel"
            )
        engine = db.open_engine(url)
        try:
            await _prepare_target(engine, url=url, force=force)
            await asyncio.to_thread(migrations.upgrade, url, manifest.schema_revision)
            counts = await _load(engine, path=path, identities=identities, manifest=manifest)
            await asyncio.to_thread(migrations.upgrade, url, "head")
            if audit:
                await _audit(
                    engine,
                    action="backup.restore",
                    outcome="success",
                    target=path.name,
                    details={"createdAt": manifest.created_at, "sha256": manifest.sha256},
                )
        finally:
            await engine.dispose()
    log.info("backup_restored", source=location, rows=counts)
    return RestoreResult(manifest=manifest, row_counts=counts)


async def _prepare_target(engine: AsyncEngine, *, url: str, force: bool) -> None:
    async with engine.begin() as conn:
        revision = await db.current_revision(conn)
        if conn.dialect.name == "postgresql":
            await conn.execute(text("SELECT set_config('keel.role', 'system', true)"))
        occupied = await db.count_rows(conn, list(db.OCCUPANCY_TABLES))
    if any(occupied.values()) and not force:
        raise BackupRefused(
            f"the target database holds data ({occupied}); pass --force to replace it"
        )
    if revision is None:
        return
    if not db.is_known_revision(revision):
        raise BackupRefused(
            f"the target database is at schema revision {revision}, unknown to this Keel"
        )
    # Every migration downgrades cleanly (SPEC §1): this drops every Keel table, triggers
    # and policies included, so the append-only audit log is replaced, never edited.
    await asyncio.to_thread(migrations.downgrade, url, "base")


async def _load(
    engine: AsyncEngine,
    *,
    path: Path,
    identities: list[x25519.Identity] | None,
    manifest: Manifest,
) -> dict[str, int]:
    """Load every row in one transaction; it commits only if the counts match the manifest."""
    reader = ArchiveReader(path, identities=identities)
    try:
        async with engine.begin() as conn:
            counts = await db.load(
                conn,
                reader.sections(batch=db.LOAD_BATCH_ROWS),
                tables=list(manifest.row_counts),
            )
            await asyncio.to_thread(reader.finish)
            if counts != {table: n for table, n in manifest.row_counts.items() if n}:
                raise BackupError(f"loaded {counts}, the manifest lists {manifest.row_counts}")
        return counts
    finally:
        reader.close()


async def verify_backup(
    location: str, *, settings: Settings, identity: Path | None = None
) -> RestoreResult:
    """Hash, decryption and a trial restore into a scratch SQLite database."""
    with tempfile.TemporaryDirectory(prefix="keel-verify") as scratch:
        url = f"sqlite+aiosqlite:///{Path(scratch) / 'verify.db'}"
        return await restore_backup(
            location, settings=settings, identity=identity, database_url=url, audit=False
        )


# --- scheduled backups ----------------------------------------------------------------------


@contextlib.asynccontextmanager
async def single_instance(settings: Settings) -> AsyncIterator[bool]:
    """True for the one instance that may run the job now: a session advisory lock on
    PostgreSQL, held for the duration; on SQLite a file lock in the data directory (the
    instance is one machine, but `serve --workers N` runs N processes)."""
    if settings.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        with (settings.data_dir / "backup.lock").open("a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    engine = db.open_engine(settings.effective_database_url)
    try:
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            locked = await conn.scalar(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_LOCK_KEY}
            )
            try:
                yield bool(locked)
            finally:
                if locked:
                    await conn.execute(
                        text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_LOCK_KEY}
                    )
    finally:
        await engine.dispose()


async def newest_backup_age(settings: Settings) -> float | None:
    names = await open_target(None, settings).names()
    if not names:
        return None
    newest = taken_at(names[-1])
    assert newest is not None
    return (datetime.now(UTC) - newest).total_seconds()


async def apply_retention(settings: Settings) -> list[str]:
    """Delete all but the newest KEEL_BACKUP_KEEP backups at the configured target."""
    target = open_target(None, settings)
    names = await target.names()
    doomed = names[: -settings.backup_keep]
    if doomed:
        await target.delete(doomed)
        log.info("backup_retention", deleted=len(doomed), kept=settings.backup_keep)
    return doomed


async def run_scheduled_backup(settings: Settings) -> BackupResult | None:
    """One scheduled run: take a backup (unless another instance just did), apply retention.

    None when another instance holds the lock or has taken a backup within half an interval.
    """
    async with single_instance(settings) as mine:
        if not mine:
            return None
        interval = settings.backup_schedule or 0
        age = await newest_backup_age(settings)
        if age is not None and age < interval / 2:
            return None
        result = await create_backup(settings)
        await apply_retention(settings)
        return result


class BackupSchedule:
    """An in-process periodic runner; the jobs engine (§10) can take this over later."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._task: asyncio.Task[None] | None = None

    def start(self) -> BackupSchedule:
        if self.settings.backup_schedule:
            self._task = asyncio.create_task(self._loop(self.settings.backup_schedule))
        return self

    async def _loop(self, interval: int) -> None:
        delay = 0.0
        with contextlib.suppress(Exception):
            age = await newest_backup_age(self.settings)
            if age is not None:
                LAST_SUCCESS.set(time.time() - age)
                delay = max(0.0, interval - age)
        while True:
            await asyncio.sleep(delay)
            delay = interval
            try:
                await run_scheduled_backup(self.settings)
            except Exception as exc:  # the next interval tries again; the metric shows the gap
                log.error("scheduled_backup_failed", error=str(exc), kind=type(exc).__name__)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
