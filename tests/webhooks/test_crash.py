"""Real server processes: a delivery survives `kill -9` of its sender, and two instances
never send one attempt twice."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from keel.settings import Settings
from tests.conftest import FAST_ARGON2, is_postgres
from tests.servers import Server, run_server
from tests.webhooks.conftest import API
from tests.webhooks.receiver import Receiver, run_receiver


def _env(settings: Settings) -> dict[str, str]:
    env = {
        "KEEL_DATABASE_URL": settings.effective_database_url,
        "KEEL_REDIS_URL": settings.redis_url or "",
        "KEEL_SECRET_KEY": settings.secret_key,
        "KEEL_DATA_DIR": str(settings.data_dir),
        "KEEL_JOBS_ENABLED": "true",
        "KEEL_JOBS_POLL_SECONDS": "0.2",
        "KEEL_JOBS_EXECUTOR_TIMEOUT_SECONDS": "3",
        "KEEL_WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
        "KEEL_WEBHOOK_RETRY_SCHEDULE": "0.5,0.5,0.5",
        "KEEL_RATE_LIMIT_ENABLED": "false",
    }
    env.update({f"KEEL_{k.upper()}": str(v) for k, v in FAST_ARGON2.items()})
    return env


def _wait(check: Callable[[], bool], seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.1)


def _user_with_endpoint(server: Server, url: str) -> dict[str, str]:
    registered = httpx.post(
        f"{server.url}/api/v1/auth/register",
        json={
            "email": f"crash-{time.time_ns()}@example.com",
            "password": "correct horse battery",
            "name": "C",
        },
        timeout=30,
    )
    assert registered.status_code == 201, registered.text
    headers = {"Authorization": f"Bearer {registered.json()['accessToken']}"}
    created = httpx.post(
        f"{server.url}{API}",
        json={"url": url, "events": ["project.created"]},
        headers=headers,
        timeout=30,
    )
    assert created.status_code == 201, created.text
    return headers


@pytest.fixture
def held_receiver() -> Iterator[Receiver]:
    with run_receiver(Receiver(hold_first=4.0)) as state:
        yield state


def test_kill_9_while_delivering_then_restart_delivers_exactly_once(
    settings: Settings, tmp_path: Path, held_receiver: Receiver
) -> None:
    env = _env(settings)
    with run_server(env, log_dir=tmp_path) as first:
        headers = _user_with_endpoint(first, held_receiver.url)
        created = httpx.post(
            f"{first.url}/api/v1/projects",
            json={"name": "Survives a crash"},
            headers=headers,
            timeout=30,
        )
        assert created.status_code == 201
        # The receiver holds the first request: the sender is killed in the middle of it.
        _wait(lambda: held_receiver.count() >= 1)
        first.process.kill()
        first.process.wait()
    with run_server(env, log_dir=tmp_path):
        _wait(lambda: held_receiver.count() >= 2)
        time.sleep(1.0)  # room for a wrong duplicate to show up before counting
    assert len(held_receiver.unique) == 1
    assert (
        held_receiver.requests[-1].headers["webhook-id"]
        == held_receiver.requests[0].headers["webhook-id"]
    )
    assert created.json()["id"] in held_receiver.requests[-1].body


@pytest.mark.skipif(
    not is_postgres(), reason="several instances share PostgreSQL, not a SQLite file"
)
def test_two_instances_never_send_one_attempt_twice(settings: Settings, tmp_path: Path) -> None:
    env = _env(settings)
    with (
        run_receiver() as receiver,
        run_server(env, log_dir=tmp_path) as one,
        run_server(env, log_dir=tmp_path) as two,
    ):
        headers = _user_with_endpoint(one, receiver.url)
        for n in range(40):
            server = one if n % 2 else two
            response = httpx.post(
                f"{server.url}/api/v1/projects",
                json={"name": f"Twice {n}"},
                headers=headers,
                timeout=30,
            )
            assert response.status_code == 201
        _wait(lambda: receiver.count() >= 40)
        time.sleep(1.0)  # room for a wrong duplicate to show up before counting
    assert receiver.count() == 40
    assert len(receiver.unique) == 40
