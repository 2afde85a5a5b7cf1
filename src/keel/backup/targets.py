"""Where backups live: a local directory or an S3-compatible bucket (boto3, off the loop)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from keel.backup.archive import BackupError
from keel.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# keel-backup-20261130T214000.123456Z.ndjson.gz[.age]: the name sorts by time.
NAME_RE = re.compile(r"^keel-backup-(\d{8}T\d{6}\.\d{6}Z)\.ndjson\.gz(\.age)?$")


def backup_name(at: datetime, *, encrypted: bool) -> str:
    stamp = at.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    return f"keel-backup-{stamp}.ndjson.gz" + (".age" if encrypted else "")


def taken_at(name: str) -> datetime | None:
    match = NAME_RE.match(name)
    if match is None:
        return None
    return datetime.strptime(match.group(1), "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=UTC)


class Target(Protocol):
    """A place that stores backup files by name."""

    def staging_dir(self) -> Path | None:
        """Where to write the file before `store` (None: a temporary directory)."""

    async def store(self, staged: Path, name: str) -> str:
        """Move a finished file in under `name`; return its path or URL."""

    async def names(self) -> list[str]:
        """Names of the Keel backups held, oldest first."""

    async def delete(self, names: list[str]) -> None: ...


@dataclass
class DirectoryTarget:
    path: Path

    def staging_dir(self) -> Path | None:
        self.path.mkdir(parents=True, exist_ok=True)
        return self.path

    async def store(self, staged: Path, name: str) -> str:
        final = self.path / name
        # Renamed only when complete: a half-written backup never carries a backup's name.
        await asyncio.to_thread(os.replace, staged, final)
        return str(final.resolve())

    async def names(self) -> list[str]:
        if not self.path.is_dir():
            return []
        entries = await asyncio.to_thread(os.listdir, self.path)
        return sorted(name for name in entries if NAME_RE.match(name))

    async def delete(self, names: list[str]) -> None:
        for name in names:
            await asyncio.to_thread((self.path / name).unlink, missing_ok=True)


def parse_s3_url(url: str) -> tuple[str, str]:
    match = re.fullmatch(r"s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(.*))?", url)
    if match is None:
        raise BackupError(f"not an S3 URL: {url!r} (expected s3://bucket/prefix)")
    return match.group(1), (match.group(2) or "").strip("/")


def s3_client(settings: Settings) -> S3Client:
    """Credentials come from boto3's usual chain (AWS_ACCESS_KEY_ID…, profiles, roles)."""
    import boto3

    client: S3Client = boto3.client(
        "s3",
        endpoint_url=settings.backup_s3_endpoint_url or None,  # empty in .env: AWS itself
        region_name=settings.backup_s3_region or None,
    )
    return client


@dataclass
class S3Target:
    client: S3Client
    bucket: str
    prefix: str

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def staging_dir(self) -> Path | None:
        return None

    async def store(self, staged: Path, name: str) -> str:
        # upload_file streams from disk in multipart chunks; memory stays flat.
        await asyncio.to_thread(self.client.upload_file, str(staged), self.bucket, self._key(name))
        return f"s3://{self.bucket}/{self._key(name)}"

    async def names(self) -> list[str]:
        def listing() -> list[str]:
            found = []
            paginator = self.client.get_paginator("list_objects_v2")
            prefix = f"{self.prefix}/" if self.prefix else ""
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/"):
                for item in page.get("Contents", []):
                    name = item["Key"][len(prefix) :]
                    if NAME_RE.match(name):
                        found.append(name)
            return sorted(found)

        return await asyncio.to_thread(listing)

    async def delete(self, names: list[str]) -> None:
        for start in range(0, len(names), 1000):  # the API's limit per call
            chunk = names[start : start + 1000]
            await asyncio.to_thread(
                self.client.delete_objects,
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": self._key(name)} for name in chunk]},
            )


def open_target(location: str | None, settings: Settings) -> DirectoryTarget | S3Target:
    location = location or settings.backup_target or str(settings.data_dir / "backups")
    if location.startswith("s3://"):
        bucket, prefix = parse_s3_url(location)
        return S3Target(client=s3_client(settings), bucket=bucket, prefix=prefix)
    return DirectoryTarget(Path(location))


async def fetch_local(location: str, *, settings: Settings, scratch: Path) -> Path:
    """A local path for a backup given as a path or an s3:// URL (downloaded into scratch)."""
    if not location.startswith("s3://"):
        path = Path(location)
        if not await asyncio.to_thread(path.is_file):
            raise BackupError(f"no backup file at {location}")
        return path
    bucket, key = parse_s3_url(location)
    destination = scratch / (key.rsplit("/", 1)[-1] or "backup")
    client = s3_client(settings)
    from botocore.exceptions import ClientError

    try:
        await asyncio.to_thread(client.download_file, bucket, key, str(destination))
    except ClientError as exc:
        raise BackupError(f"cannot download {location}: {exc}") from exc
    return destination


def remove_quietly(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
