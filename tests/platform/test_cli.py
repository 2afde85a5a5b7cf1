"""The command line: migrate, openapi, and serve on an empty data directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
