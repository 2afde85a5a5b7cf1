"""Issue 10 items 8-9: a database or Redis that fails under two real Keel processes.

Each test has a PostgreSQL or Redis of its own (tests/hardening/private.py) and stops, kills
and restarts it; the Keel processes are never restarted.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from keel import migrations
from tests.conftest import is_postgres
from tests.hardening.private import private_postgres, private_redis
from tests.servers import Server, run_server

PASSWORD = "correct horse battery staple"


def _register(base: str) -> dict[str, str]:
    response = httpx.post(
        f"{base}/api/v1/auth/register",
        json={"email": f"u-{uuid.uuid4().hex[:10]}@example.com", "password": PASSWORD, "name": "U"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['accessToken']}"}


def _wait_ready(server: Server, *, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while httpx.get(f"{server.url}/ready", timeout=10).status_code != 200:
        assert time.monotonic() < deadline, server.log()[-3000:]
        time.sleep(0.2)


def _log_events(server: Server) -> list[dict[str, Any]]:
    # Any: structured log lines.
    events = []
    for line in server.log().splitlines():
        if line.startswith("{"):
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
    return events


def _env(database_url: str, redis_url: str | None, **extra: str) -> dict[str, str]:
    env = {
        "KEEL_DATABASE_URL": database_url,
        "KEEL_SECRET_KEY": "outage-test-secret-" + "x" * 40,
        "KEEL_LOG_FORMAT": "json",
        "KEEL_ARGON2_MEMORY_KIB": "1024",
        "KEEL_ARGON2_TIME_COST": "1",
        "KEEL_ARGON2_PARALLELISM": "1",
        "KEEL_RATE_LIMIT_ENABLED": "false",
        **extra,
    }
    if redis_url:
        env["KEEL_REDIS_URL"] = redis_url
    return env


def test_database_outage_answers_503_logs_once_and_recovers(
    tmp_path: Path, redis_url: str | None
) -> None:
    if not is_postgres():
        pytest.skip("a PostgreSQL outage: run with the PostgreSQL backend")
    with private_postgres() as pg:
        migrations.upgrade(pg.url)
        env = _env(pg.url, redis_url)
        with (
            run_server(env, log_dir=tmp_path) as one,
            run_server(env, log_dir=tmp_path) as two,
        ):
            headers = _register(one.url)
            for server in (one, two):
                created = httpx.post(
                    f"{server.url}/api/v1/projects",
                    json={"name": "Before the outage"},
                    headers=headers,
                    timeout=30,
                )
                assert created.status_code == 201, created.text

            pg.stop_immediately()
            for attempt in range(6):
                for server in (one, two):
                    response = httpx.post(
                        f"{server.url}/api/v1/projects",
                        json={"name": f"During the outage {attempt}"},
                        headers=headers,
                        timeout=30,
                    )
                    assert response.status_code == 503, response.text
                    assert int(response.headers["retry-after"]) >= 1
                    body = response.json()
                    assert body["code"] == "SERVICE_UNAVAILABLE"
                    assert set(body) >= {"error", "code", "details", "timestamp", "path"}
                    assert "Traceback" not in response.text
                # Reads that need the database too (a profile miss, a fresh sign-in).
                signin = httpx.post(
                    f"{one.url}/api/v1/auth/login",
                    json={"email": "nobody@example.com", "password": PASSWORD},
                    timeout=30,
                )
                assert signin.status_code == 503, signin.text

            pg.start()
            for server in (one, two):
                _wait_ready(server)
                created = httpx.post(
                    f"{server.url}/api/v1/projects",
                    json={"name": "After the outage"},
                    headers=headers,
                    timeout=30,
                )
                assert created.status_code == 201, created.text
            listed = httpx.get(f"{one.url}/api/v1/projects", headers=headers, timeout=30)
            names = sorted(p["name"] for p in listed.json()["data"])
            assert names == ["After the outage"] * 2 + ["Before the outage"] * 2

        for server in (one, two):
            events = [e["event"] for e in _log_events(server)]
            assert events.count("database_unavailable") == 1, server.log()[-3000:]
            assert events.count("database_recovered") == 1
            assert "unhandled_error" not in events
            assert "Traceback" not in server.log()


def test_redis_restart_leaves_no_read_staler_than_l1(tmp_path: Path, database_url: str) -> None:
    """Two instances; Redis is SIGKILLed and comes back empty. Renames through one instance
    are seen by the other within the L1 lifetime (1 s here), not the L2 one (60 s)."""
    l1_ttl = 1.0
    with private_redis() as redis_server:
        env = _env(
            database_url,
            redis_server.url,
            KEEL_CACHE_L1_TTL_SECONDS=str(l1_ttl),
            KEEL_CACHE_L2_TTL_SECONDS="60",
        )
        with (
            run_server(env, log_dir=tmp_path) as one,
            run_server(env, log_dir=tmp_path) as two,
        ):
            headers = _register(one.url)
            created = httpx.post(
                f"{one.url}/api/v1/projects", json={"name": "Name 0"}, headers=headers, timeout=30
            )
            assert created.status_code == 201, created.text
            project = created.json()["id"]

            def read(server: Server) -> str:
                response = httpx.get(
                    f"{server.url}/api/v1/projects/{project}", headers=headers, timeout=30
                )
                assert response.status_code == 200, response.text
                return str(response.json()["name"])

            def rename_and_check(name: str) -> None:
                renamed = httpx.patch(
                    f"{one.url}/api/v1/projects/{project}",
                    json={"name": name},
                    headers=headers,
                    timeout=30,
                )
                assert renamed.status_code == 200, renamed.text
                # Bound: the L1 lifetime plus scheduling slack, far below the L2 lifetime.
                deadline = time.monotonic() + l1_ttl + 4.0
                while (seen := read(two)) != name:
                    assert time.monotonic() < deadline, f"instance 2 still serves {seen!r}"
                    time.sleep(0.1)

            for server in (one, two):
                assert read(server) == "Name 0"
            redis_server.kill()
            # Reads and writes go on while Redis is away (L1 only, then the database).
            for _index in range(3):
                for server in (one, two):
                    read(server)
                time.sleep(0.5)
            rename_and_check("Name during outage")
            redis_server.start()
            for server in (one, two):
                _wait_ready(server)
            # Caches refill through both instances after the restart, then renames follow.
            for round_ in range(4):
                for server in (one, two, two, one):
                    read(server)
                rename_and_check(f"Name {round_ + 1}")
                time.sleep(0.7)
