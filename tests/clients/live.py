"""A real `python -m keel serve` for client and console tests, on this run's backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from keel.settings import Settings
from tests.conftest import FAST_ARGON2, IN_CI
from tests.servers import Server, run_server

ROOT = Path(__file__).resolve().parents[2]


def server_env(settings: Settings) -> dict[str, str]:
    env = {
        "KEEL_DATABASE_URL": settings.effective_database_url,
        "KEEL_SECRET_KEY": settings.secret_key,
        "KEEL_DATA_DIR": str(settings.data_dir),
        "KEEL_LOG_LEVEL": "WARNING",
        "KEEL_EVENTS_POLL_SECONDS": "0.5",
        # These tests sign in many times from one address; the limits have their own tests.
        "KEEL_RATE_LIMIT_ENABLED": "false",
        "KEEL_LOGIN_FAILURE_DELAY_MAX_SECONDS": "0",
        **{f"KEEL_{key.upper()}": str(value) for key, value in FAST_ARGON2.items()},
    }
    if settings.redis_url:
        env["KEEL_REDIS_URL"] = settings.redis_url
    return env


@pytest.fixture
def live_keel(settings: Settings, tmp_path: Path) -> Iterator[Server]:
    with run_server(server_env(settings), log_dir=tmp_path) as server:
        yield server


def require(path: Path, *, how: str) -> None:
    """Fail under CI (where .ci/run installs it), skip on a developer machine without it."""
    if path.exists():
        return
    message = f"{path} is missing: {how}"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)
