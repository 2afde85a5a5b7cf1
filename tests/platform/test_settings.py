"""Settings: safe defaults, refusal of unsafe production configuration, the local secret."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from keel.settings import ConfigurationError, Settings

STRONG = "k" * 20 + "Zq8vN2pL0xR5tW9yB3cD"
PG = "postgresql+asyncpg://keel@db/keel"


def test_development_defaults_to_sqlite_in_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, database_url="")
    assert settings.effective_database_url == f"sqlite+aiosqlite:///{tmp_path / 'keel.db'}"
    assert settings.is_sqlite
    assert settings.should_auto_migrate


def test_postgres_does_not_auto_migrate_by_default() -> None:
    assert not Settings(database_url=PG).should_auto_migrate


@pytest.mark.parametrize("secret", ["", "short", "changeme", "secret"])
def test_production_refuses_missing_or_weak_secret(secret: str) -> None:
    with pytest.raises((ConfigurationError, ValidationError), match="KEEL_SECRET_KEY"):
        Settings(env="production", secret_key=secret, database_url=PG)


def test_production_refuses_sqlite_without_opt_in() -> None:
    with pytest.raises((ConfigurationError, ValidationError), match="PostgreSQL"):
        Settings(env="production", secret_key=STRONG, database_url="")
    allowed = Settings(
        env="production", secret_key=STRONG, database_url="", allow_sqlite_in_production=True
    )
    assert allowed.is_sqlite


def test_production_refuses_wildcard_cors() -> None:
    with pytest.raises((ConfigurationError, ValidationError), match="CORS"):
        Settings(env="production", secret_key=STRONG, database_url=PG, cors_origins="*")


@pytest.mark.parametrize("algorithm", ["RS256", "EdDSA"])
def test_production_refuses_asymmetric_tokens_without_a_shared_key_file(
    algorithm: str, tmp_path: Path
) -> None:
    # Without a key file each instance would generate its own key and reject the others'.
    with pytest.raises((ConfigurationError, ValidationError), match="KEEL_JWT_PRIVATE_KEY_FILE"):
        Settings(env="production", secret_key=STRONG, database_url=PG, jwt_algorithm=algorithm)
    key_file = tmp_path / "jwt.pem"
    key_file.write_text("-----BEGIN PRIVATE KEY-----\n")
    settings = Settings(
        env="production",
        secret_key=STRONG,
        database_url=PG,
        jwt_algorithm=algorithm,
        jwt_private_key_file=key_file,
    )
    assert settings.jwt_private_key_file == key_file


def test_production_with_strong_secret_and_postgres_starts() -> None:
    settings = Settings(
        env="production",
        secret_key=STRONG,
        database_url=PG,
        cors_origins="https://app.example.com, https://admin.example.com",
    )
    assert settings.signing_secret == STRONG
    assert settings.cors_origins == ["https://app.example.com", "https://admin.example.com"]


def test_generated_secret_is_private_and_stable(tmp_path: Path) -> None:
    first = Settings(data_dir=tmp_path / "data", secret_key="").signing_secret
    path = tmp_path / "data" / "secret.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) >= 32
    assert Settings(data_dir=tmp_path / "data", secret_key="").signing_secret == first


def test_settings_come_from_keel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEL_PORT", "9123")
    monkeypatch.setenv("KEEL_MAX_BODY_BYTES", "2048")
    settings = Settings()
    assert settings.port == 9123
    assert settings.max_body_bytes == 2048


def test_malformed_environment_value_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEL_PORT", "not-a-port")
    with pytest.raises(ValidationError):
        Settings()


def test_env_example_copied_to_dot_env_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Empty lines such as KEEL_HASH_POOL_SIZE= mean "use the default", not a parse error.
    example = Path(__file__).resolve().parents[2] / ".env.example"
    (tmp_path / ".env").write_text(example.read_text())
    monkeypatch.chdir(tmp_path)
    for key in [k for k in os.environ if k.startswith("KEEL_")]:
        monkeypatch.delenv(key)
    settings = Settings()
    assert settings.env.value == "development"
    assert settings.hash_pool_size is None or settings.hash_pool_size > 0
