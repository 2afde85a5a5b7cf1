"""The command line: migrate, openapi, and serve on an empty data directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from keel.cli import cli
from tests.conftest import FAST_ARGON2
from tests.servers import run_server

runner = CliRunner()


def _env(tmp_path: Path) -> dict[str, str]:
    env = {
        "KEEL_ENV": "test",
        "KEEL_DATA_DIR": str(tmp_path / "data"),
        "KEEL_DATABASE_URL": "",
        "KEEL_REDIS_URL": "",
    }
    env.update({f"KEEL_{k.upper()}": str(v) for k, v in FAST_ARGON2.items()})
    return env


def test_openapi_command_writes_the_schema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in _env(tmp_path).items():
        monkeypatch.setenv(key, value)
    out = tmp_path / "openapi.json"
    result = runner.invoke(cli, ["openapi", "--output", str(out)])
    assert result.exit_code == 0, result.output
    schema = json.loads(out.read_text())
    assert schema["info"]["title"] == "Keel"
    assert "/api/v1/auth/login" in schema["paths"]


def test_migrate_up_and_down(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in _env(tmp_path).items():
        monkeypatch.setenv(key, value)
    assert runner.invoke(cli, ["migrate"]).exit_code == 0
    assert (tmp_path / "data" / "keel.db").exists()
    down = runner.invoke(cli, ["migrate", "base", "--down"])
    assert down.exit_code == 0, down.output
    assert "revision base" in down.output


def test_refuses_production_without_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in _env(tmp_path).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("KEEL_ENV", "production")
    monkeypatch.setenv("KEEL_SECRET_KEY", "")
    result = runner.invoke(cli, ["migrate"])
    assert result.exit_code == 2
    assert "KEEL_SECRET_KEY" in result.output


def test_malformed_setting_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in _env(tmp_path).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("KEEL_PORT", "eighty")
    result = runner.invoke(cli, ["migrate"])
    assert result.exit_code == 2
    assert "configuration error" in result.output


def test_serve_on_empty_data_dir_migrates_and_answers(tmp_path: Path) -> None:
    env = {**_env(tmp_path), "KEEL_AUTO_MIGRATE": "true"}
    with run_server(env, log_dir=tmp_path) as server:
        assert httpx.get(f"{server.url}/health").status_code == 200
        assert httpx.get(f"{server.url}/ready").status_code == 200
        schema = httpx.get(f"{server.url}/openapi.json").json()
        assert schema["openapi"].startswith("3.1")
        response = httpx.post(
            f"{server.url}/api/v1/auth/register",
            json={"email": "cli@example.com", "password": "a long enough pass", "name": "C"},
        )
        assert response.status_code == 201, response.text
    assert (tmp_path / "data" / "keel.db").exists()
    assert (tmp_path / "data" / "secret.key").exists()
    log = server.log()
    assert "a long enough pass" not in log
    assert response.json()["refreshToken"] not in log


def test_module_entry_point_shows_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "keel", "--help"],
        capture_output=True,
        text=True,
        env={**os.environ},
        timeout=60,
        check=False,
    )
    assert result.returncode == 0
    for command in ("serve", "migrate", "openapi"):
        assert command in result.stdout


def test_create_admin_reaches_a_running_embedded_server_within_the_l1_lifetime(
    tmp_path: Path,
) -> None:
    # No Redis: the CLI cannot tell the server's memory. Every cached auth entry lives at
    # most KEEL_CACHE_L1_TTL_SECONDS there, so the promotion applies within that bound.
    env = {**_env(tmp_path), "KEEL_AUTO_MIGRATE": "true", "KEEL_CACHE_L1_TTL_SECONDS": "1"}
    with run_server(env, log_dir=tmp_path) as server, httpx.Client(base_url=server.url) as http:
        body = {"email": "promote@example.com", "password": "a long enough pass", "name": "P"}
        token = http.post("/api/v1/auth/register", json=body).json()["accessToken"]
        headers = {"Authorization": f"Bearer {token}"}
        assert http.get("/api/v1/users", headers=headers).status_code == 403  # cached: user
        result = subprocess.run(
            [sys.executable, "-m", "keel", "create-admin", "--email", body["email"],
             "--password", "irrelevant phrase"],
            capture_output=True,
            text=True,
            env={**os.environ, **env},
            timeout=60,
            check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("promoted administrator promote@example.com")
        statuses = []
        for _ in range(40):  # at most ~10 s; the bound is 1 s plus the poll interval
            statuses.append(http.get("/api/v1/users", headers=headers).status_code)
            if statuses[-1] == 200:
                break
            time.sleep(0.25)
        assert statuses[-1] == 200, statuses
