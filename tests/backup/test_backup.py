"""Backups taken while Keel writes restore exactly, sign-in included, across both backends."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from keel.backup import service
from keel.backup.archive import BackupLocked, read_manifest
from keel.settings import Settings
from tests.backup.conftest import (
    as_uuid,
    count,
    index_names,
    running,
    scalars,
)
from tests.conftest import RegisteredUser, promote_to_admin, register_user

API = "/api/v1/projects"


async def _create_project(client: httpx.AsyncClient, user: RegisteredUser, name: str) -> str:
    response = await client.post(API, json={"name": name}, headers=user.headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def _seed(client: httpx.AsyncClient, *, users: int = 3, projects: int = 4) -> list[str]:
    """Users with projects, and one refresh rotation (a session row with a parent)."""
    emails = []
    for n in range(users):
        user = await register_user(client, name=f"Seed {n}")
        emails.append(user.email)
        for p in range(projects):
            await _create_project(client, user, f"seed {n}-{p}")
    refreshed = await client.post("/api/v1/auth/refresh", json={"refreshToken": user.refresh_token})
    assert refreshed.status_code == 200, refreshed.text
    return emails


async def test_backup_taken_while_writers_run_restores_exactly_the_manifest_rows(
    client: httpx.AsyncClient, settings: Settings, database_url: str, scratch_url: str
) -> None:
    await _seed(client)
    writer = await register_user(client, name="Writer")
    written_during: list[str] = []

    async def write_between_tables(table: str, rows: int) -> None:
        # After each table is read, commit a project (with its outbox event and audit row)
        # and a new user: rows a snapshot must not see, whatever table they land in.
        name = f"during {table.replace('_', '-')}"
        written_during.append(await _create_project(client, writer, name))
        await register_user(client, name="During")

    stop = asyncio.Event()

    async def background_writer() -> None:
        while not stop.is_set():
            await _create_project(client, writer, "background")

    task = asyncio.create_task(background_writer())
    try:
        result = await service.create_backup(settings, progress=write_between_tables)
    finally:
        stop.set()
        await task
    manifest = result.manifest
    assert written_during
    assert await count(database_url, "projects") > manifest.row_counts["projects"]

    restored = await service.restore_backup(
        result.location, settings=settings, database_url=scratch_url
    )
    for table, rows in manifest.row_counts.items():
        restore_row = 1 if table == "audit_log" else 0  # the restore audits itself
        assert await count(scratch_url, table) == rows + restore_row, table
    assert restored.row_counts == {t: n for t, n in manifest.row_counts.items() if n}
    # One point in time across tables: every project has its creation event and no more.
    projects = {as_uuid(v) for v in await scalars(scratch_url, "SELECT id FROM projects")}
    created = {
        as_uuid(v)
        for v in await scalars(
            scratch_url, "SELECT project_id FROM events WHERE type = 'project.created'"
        )
    }
    assert projects == created
    assert not projects & {as_uuid(p) for p in written_during}
    # The restore itself is audited in the restored database.
    actions = await scalars(scratch_url, "SELECT action FROM audit_log ORDER BY id")
    assert actions[-1] == "backup.restore"
    source_actions = await scalars(database_url, "SELECT action FROM audit_log ORDER BY id")
    assert "backup.create" in source_actions
    # Indexes set aside for the load (PostgreSQL) are all back.
    assert await index_names(scratch_url) == await index_names(database_url)


async def _sign_in_and_list(client: httpx.AsyncClient, email: str) -> list[str]:
    login = await client.post(
        "/api/v1/auth/login", json={"email": email, "password": "correct horse battery staple"}
    )
    assert login.status_code == 200, login.text
    headers = {"Authorization": f"Bearer {login.json()['accessToken']}"}
    listing = await client.get(API, params={"limit": 100}, headers=headers)
    assert listing.status_code == 200, listing.text
    return sorted(item["name"] for item in listing.json()["data"])


async def _round_trip(*, source: Settings, target_url: str, age_identity: tuple[str, Path]) -> None:
    public, identity = age_identity
    source = source.model_copy(update={"backup_recipients": [public]})
    async with running(source) as client:
        emails = await _seed(client, users=2, projects=3)
        before = {email: await _sign_in_and_list(client, email) for email in emails}
        result = await service.create_backup(source)
    assert result.location.endswith(".age")
    await service.restore_backup(
        result.location, settings=source, identity=identity, database_url=target_url
    )
    target = source.model_copy(update={"database_url": target_url})
    async with running(target) as client:
        for email, names in before.items():
            assert await _sign_in_and_list(client, email) == names
        # New rows get ids after the restored ones (sequences were reset).
        user = await register_user(client)
        await _create_project(client, user, "after restore")


async def test_users_sign_in_and_see_their_projects_after_restore(
    settings: Settings, scratch_url: str, age_identity: tuple[str, Path]
) -> None:
    await _round_trip(source=settings, target_url=scratch_url, age_identity=age_identity)


@pytest.mark.parametrize(
    "source_kind", ["sqlite", "postgresql"], ids=["sqlite-to-pg", "pg-to-sqlite"]
)
async def test_a_backup_restores_into_the_other_backend(
    needs_postgres: None,
    source_kind: str,
    settings: Settings,
    tmp_path: Path,
    age_identity: tuple[str, Path],
    pg_scratch: Callable[[str], Awaitable[str]],
) -> None:
    embedded = f"sqlite+aiosqlite:///{tmp_path / 'embedded.db'}"
    scaled_out = await pg_scratch(f"cross_{source_kind}")
    source, target = (embedded, scaled_out) if source_kind == "sqlite" else (scaled_out, embedded)
    await _round_trip(
        source=settings.model_copy(update={"database_url": source}),
        target_url=target,
        age_identity=age_identity,
    )


async def test_restore_refuses_a_database_in_use_unless_forced(
    client: httpx.AsyncClient, settings: Settings, database_url: str, tmp_path: Path
) -> None:
    await _seed(client, users=1, projects=1)
    result = await service.create_backup(settings)
    extra = await register_user(client)
    with pytest.raises(service.BackupRefused, match="--force"):
        await service.restore_backup(result.location, settings=settings)
    await service.restore_backup(
        result.location,
        settings=settings,
        force=True,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'other.db'}",
    )
    assert extra.email not in await scalars(
        f"sqlite+aiosqlite:///{tmp_path / 'other.db'}", "SELECT email FROM users"
    )


async def test_forced_restore_replaces_the_append_only_audit_log(
    settings: Settings, scratch_url: str
) -> None:
    target = settings.model_copy(update={"database_url": scratch_url})
    async with running(target) as client:
        await register_user(client)
        await register_user(client)
    async with running(settings) as client:
        kept = await register_user(client)
    result = await service.create_backup(settings)
    await service.restore_backup(
        result.location, settings=settings, force=True, database_url=scratch_url
    )
    assert await scalars(scratch_url, "SELECT email FROM users") == [kept.email]
    actions = await scalars(scratch_url, "SELECT action FROM audit_log ORDER BY id")
    assert actions == ["auth.register", "backup.restore"]


async def test_scheduled_backups_run_on_one_instance_keep_the_newest_and_set_the_metric(
    make_settings: Callable[..., Settings], tmp_path: Path, client: httpx.AsyncClient
) -> None:
    settings = make_settings(
        backup_target=str(tmp_path / "scheduled"), backup_schedule=3600, backup_keep=2
    )
    for _ in range(3):
        await service.create_backup(settings)
    assert len(list((tmp_path / "scheduled").iterdir())) == 3
    # Another instance just took one: this run does nothing.
    assert await service.run_scheduled_backup(settings) is None
    removed = await service.apply_retention(settings)
    assert len(removed) == 1
    assert len(list((tmp_path / "scheduled").iterdir())) == 2
    metrics = (await client.get("/metrics")).text
    assert "backup_last_success_timestamp_seconds" in metrics


async def test_scheduled_backup_takes_one_when_none_is_recent(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(
        backup_target=str(tmp_path / "scheduled"), backup_schedule=3600, backup_keep=1
    )
    first = await service.run_scheduled_backup(settings)
    assert first is not None
    assert [p.name for p in (tmp_path / "scheduled").iterdir()] == [Path(first.location).name]


async def test_scheduled_backup_skips_while_another_instance_holds_the_lock(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(backup_target=str(tmp_path / "locked"), backup_schedule=60)
    async with service.single_instance(settings) as mine:
        assert mine
        assert await service.run_scheduled_backup(settings) is None
    assert not (tmp_path / "locked").exists()


async def test_the_app_runs_the_schedule_when_configured(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(backup_target=str(tmp_path / "auto"), backup_schedule=3600)
    async with running(settings):
        for _ in range(300):  # the first run starts at once when no backup is recent
            if (tmp_path / "auto").is_dir() and any(
                p.name.startswith("keel-backup-") for p in (tmp_path / "auto").iterdir()
            ):
                break
            await asyncio.sleep(0.1)
    assert any(p.name.startswith("keel-backup-") for p in (tmp_path / "auto").iterdir())


async def test_s3_target_stores_lists_restores_and_prunes(
    make_settings: Callable[..., Settings],
    s3_endpoint: str,
    s3_credentials: None,
    scratch_url: str,
    age_identity: tuple[str, Path],
    client: httpx.AsyncClient,
) -> None:
    import boto3

    settings = make_settings(
        backup_target="s3://keel-backups/nightly",
        backup_s3_endpoint_url=s3_endpoint,
        backup_s3_region="us-east-1",
        backup_recipients=[age_identity[0]],
        backup_keep=1,
    )
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket="keel-backups")
    user = await register_user(client)
    first = await service.create_backup(settings)
    second = await service.create_backup(settings)
    assert second.location.startswith("s3://keel-backups/nightly/keel-backup-")
    manifest = await service.inspect_backup(
        second.location, settings=settings, identity=age_identity[1]
    )
    assert manifest.row_counts["users"] == 1
    await service.restore_backup(
        second.location, settings=settings, identity=age_identity[1], database_url=scratch_url
    )
    assert await scalars(scratch_url, "SELECT email FROM users") == [user.email]
    await service.apply_retention(settings)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="keel-backups")["Contents"]]
    assert keys == [second.location.removeprefix("s3://keel-backups/")]
    assert first.location.removeprefix("s3://keel-backups/") not in keys
    with pytest.raises(service.BackupError, match="cannot download"):
        await service.inspect_backup(
            "s3://keel-backups/nightly/missing", settings=settings, identity=age_identity[1]
        )


async def test_an_encrypted_backup_cannot_be_read_by_the_instance_that_wrote_it(
    make_settings: Callable[..., Settings], age_identity: tuple[str, Path], tmp_path: Path
) -> None:
    settings = make_settings(
        backup_target=str(tmp_path / "enc"), backup_recipients=[age_identity[0]]
    )
    result = await service.create_backup(settings)
    assert not result.unencrypted_warning
    assert b'"users"' not in Path(result.location).read_bytes()
    with pytest.raises(BackupLocked, match="--identity"):
        read_manifest(Path(result.location), identities=None)


async def test_admin_sees_backups_in_the_audit_log(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings
) -> None:
    admin = await register_user(client)
    await promote_to_admin(app, admin.id)
    await service.create_backup(settings)
    login = await client.post(
        "/api/v1/auth/login", json={"email": admin.email, "password": admin.password}
    )
    headers = {"Authorization": f"Bearer {login.json()['accessToken']}"}
    page = await client.get("/api/v1/audit", params={"action": "backup.create"}, headers=headers)
    assert page.status_code == 200, page.text
    assert page.json()["data"][0]["outcome"] == "success"
