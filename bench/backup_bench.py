"""Backup and restore of 100 000 projects on SQLite and PostgreSQL: wall time and peak RSS.

Seeds a fresh database per backend, then runs `python -m keel backup create` and
`backup restore` (encrypted with age, as production runs them) each in its own process, and
reads that process's peak resident memory from the kernel (wait4). Writes
bench/results/backup.md.

    .venv/bin/python bench/backup_bench.py [--projects 10000,100000] [--backends sqlite,postgres]

Two sizes by default: peak memory that does not grow with the data is what streaming means.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pyrage import x25519
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import create_async_engine

from keel import migrations
from keel.identity.models import User
from keel.projects.models import Project

ROOT = Path(__file__).resolve().parent.parent
PG_BASE = os.environ.get("BENCH_BACKUP_PG_URL", "postgresql+asyncpg://keel_ci@127.0.0.1:5432")


async def recreate_pg(name: str) -> str:
    engine = create_async_engine(f"{PG_BASE}/postgres", isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await engine.dispose()
    return f"{PG_BASE}/{name}"


async def drop_pg(name: str) -> None:
    engine = create_async_engine(f"{PG_BASE}/postgres", isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await engine.dispose()


async def seed(url: str, *, projects: int, users: int = 1000) -> None:
    engine = create_async_engine(url)
    now = datetime.now(UTC)
    user_ids = [uuid.uuid4() for _ in range(users)]
    async with engine.begin() as conn:
        if url.startswith("postgresql"):
            await conn.execute(text("SELECT set_config('keel.role', 'system', true)"))
        await conn.execute(
            insert(User),
            [
                {
                    "id": uid,
                    "email": f"bench-{n}@example.com",
                    "password_hash": "$argon2id$v=19$m=65536,t=3,p=4$bench$bench",
                    "name": f"Bench {n}",
                    "role": "user",
                    "is_active": True,
                    "created_at": now,
                    "updated_at": now,
                }
                for n, uid in enumerate(user_ids)
            ],
        )
        batch = []
        for n in range(projects):
            at = now - timedelta(seconds=n)
            batch.append(
                {
                    "id": uuid.uuid4(),
                    "user_id": user_ids[n % users],
                    "name": f"Project {n}",
                    "description": f"A benchmark project, number {n}, with a short description.",
                    "status": ("active", "completed", "archived")[n % 3],
                    "version": 1,
                    "created_at": at,
                    "updated_at": at,
                    "search_name": f"project {n}",
                    "search_description": f"a benchmark project, number {n}.",
                }
            )
            if len(batch) == 5000:
                await conn.execute(insert(Project), batch)
                batch = []
        if batch:
            await conn.execute(insert(Project), batch)
    await engine.dispose()


def run_measured(args: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(seconds, peak RSS MiB, last stdout line) of one `python -m keel …` process."""
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "keel", *args],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert process.stdout is not None
    output = process.stdout.read().decode()
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"keel {' '.join(args)} failed ({process.returncode}):\n{output}")
    return elapsed, usage.ru_maxrss / 1024, output.strip().splitlines()[-1]


def bench_backend(kind: str, *, projects: int, work: Path) -> dict[str, float | str]:
    identity = x25519.Identity.generate()
    key = work / f"{kind}.key"
    key.write_text(f"{identity}\n")
    if kind == "sqlite":
        source = f"sqlite+aiosqlite:///{work / 'source.db'}"
        target = f"sqlite+aiosqlite:///{work / 'target.db'}"
    else:
        source = asyncio.run(recreate_pg("keel_backup_bench_source"))
        target = asyncio.run(recreate_pg("keel_backup_bench_target"))
    migrations.upgrade(source)
    asyncio.run(seed(source, projects=projects))
    env = {
        "KEEL_ENV": "development",
        "KEEL_DATA_DIR": str(work / "data"),
        "KEEL_DATABASE_URL": source,
        "KEEL_BACKUP_RECIPIENTS": str(identity.to_public()),
        "KEEL_LOG_LEVEL": "WARNING",
    }
    create_s, create_mb, location = run_measured(
        ["backup", "create", "--to", str(work / kind)], env
    )
    size_mb = Path(location).stat().st_size / 2**20
    restore_s, restore_mb, _ = run_measured(
        ["backup", "restore", location, "--identity", str(key)],
        {**env, "KEEL_DATABASE_URL": target},
    )
    if kind == "postgres":
        asyncio.run(drop_pg("keel_backup_bench_source"))
        asyncio.run(drop_pg("keel_backup_bench_target"))
    return {
        "backend": kind,
        "create_s": create_s,
        "create_mb": create_mb,
        "restore_s": restore_s,
        "restore_mb": restore_mb,
        "size_mb": size_mb,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--projects", default="10000,100000")
    parser.add_argument("--backends", default="sqlite,postgres")
    options = parser.parse_args()
    load_before = os.getloadavg()[0]
    rows = []
    for projects in [int(n) for n in options.projects.split(",")]:
        for kind in options.backends.split(","):
            print(f"bench: {kind}, {projects} projects", flush=True)
            with tempfile.TemporaryDirectory(prefix="keel-backup-bench") as scratch:
                result = bench_backend(kind, projects=projects, work=Path(scratch))
            rows.append({"projects": projects, **result})
    lines = [
        "# Backup and restore of projects + 1000 users (age-encrypted)",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on this machine (2 shared cores), "
        "each command its own process; peak RSS from wait4. Restore includes the "
        "verification pass over the file before anything is written, and the migrations. "
        f"Load average {load_before:.1f} before / {os.getloadavg()[0]:.1f} after: times "
        "scale with what else the machine runs; peak memory does not.",
        "",
        "| projects | backend | create (s) | create peak RSS (MiB) | file (MiB) "
        "| restore (s) | restore peak RSS (MiB) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['projects']} | {r['backend']} | {r['create_s']:.1f} | {r['create_mb']:.0f} | "
            f"{r['size_mb']:.1f} | {r['restore_s']:.1f} | {r['restore_mb']:.0f} |"
        )
    report = "\n".join(lines) + "\n"
    (ROOT / "bench" / "results" / "backup.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
