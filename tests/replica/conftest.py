"""A real streaming replica: a private PostgreSQL primary and a `pg_basebackup -R` standby,
started from the installed binaries on free ports and stopped after the module."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from keel import migrations
from tests.conftest import IN_CI, is_postgres
from tests.servers import free_port


@dataclass(frozen=True)
class ReplicaPair:
    primary_port: int
    replica_port: int

    def url(self, port: int, *, driver: str = "postgresql+asyncpg") -> str:
        return f"{driver}://postgres@127.0.0.1:{port}/keel"

    @property
    def primary_url(self) -> str:
        return self.url(self.primary_port)

    @property
    def replica_url(self) -> str:
        return self.url(self.replica_port)


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_basebackup"))
    return Path(found[-1]).parent if found else None


def _run(*command: str) -> None:
    # initdb refuses to run as root: run the cluster as the `postgres` OS user then.
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run([*prefix, *command], check=True, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def replica_pair() -> Iterator[ReplicaPair]:
    if not is_postgres():
        pytest.skip("replica routing is PostgreSQL's")
    bin_dir = _bin_dir()
    if bin_dir is None:
        if IN_CI:
            pytest.fail("PostgreSQL server binaries (initdb, pg_basebackup) are not installed")
        pytest.skip("PostgreSQL server binaries are not installed")
    root = Path(tempfile.mkdtemp(prefix="keel-replica-"))
    if os.geteuid() == 0:
        shutil.chown(root, user="postgres")
    primary, standby = root / "primary", root / "standby"
    pair = ReplicaPair(primary_port=free_port(), replica_port=free_port())
    started: list[Path] = []
    try:
        _run(str(bin_dir / "initdb"), "-D", str(primary), "-U", "postgres", "--auth=trust")
        settings = (
            f"port = {pair.primary_port}\nlisten_addresses = '127.0.0.1'\n"
            f"unix_socket_directories = '{root}'\nwal_level = replica\nmax_wal_senders = 4\n"
            "fsync = off\nhot_standby = on\n"
        )
        _run("sh", "-c", f'printf %s "{settings}" >> {primary}/postgresql.conf')
        _run(
            str(bin_dir / "pg_ctl"),
            "-D",
            str(primary),
            "-l",
            str(root / "primary.log"),
            "-w",
            "start",
        )
        started.append(primary)
        _run(
            str(bin_dir / "psql"),
            "-h", "127.0.0.1", "-p", str(pair.primary_port), "-U", "postgres",
            "-c", "CREATE DATABASE keel",
        )  # fmt: skip
        migrations.upgrade(pair.primary_url)
        _run(
            str(bin_dir / "pg_basebackup"),
            "-h", "127.0.0.1", "-p", str(pair.primary_port), "-U", "postgres",
            "-D", str(standby), "-R", "-X", "stream",
        )  # fmt: skip
        _run("sh", "-c", f'printf %s "port = {pair.replica_port}\n" >> {standby}/postgresql.conf')
        _run(
            str(bin_dir / "pg_ctl"),
            "-D",
            str(standby),
            "-l",
            str(root / "standby.log"),
            "-w",
            "start",
        )
        started.append(standby)
        yield pair
    finally:
        for data_dir in reversed(started):
            _run(str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-m", "fast", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)
