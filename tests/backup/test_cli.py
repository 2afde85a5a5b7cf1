"""`python -m keel backup …`: output shapes, refusals and failed checks, with exit codes."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from pyrage import x25519
from typer.testing import CliRunner

from keel.backup.archive import ArchiveWriter
from keel.cli import cli
from tests.conftest import FAST_ARGON2

runner = CliRunner()


@pytest.fixture
def env(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {
        "KEEL_ENV": "test",
        "KEEL_DATA_DIR": str(tmp_path / "data"),
        "KEEL_DATABASE_URL": database_url,
        "KEEL_REDIS_URL": "",
        "KEEL_SECRET_KEY": "test-secret-" + "x" * 40,
        "KEEL_BACKUP_TARGET": str(tmp_path / "backups"),
        "KEEL_BACKUP_RECIPIENTS": "",
        **{f"KEEL_{k.upper()}": str(v) for k, v in FAST_ARGON2.items()},
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


def _create(*args: str) -> Path:
    result = runner.invoke(cli, ["backup", "create", *args])
    assert result.exit_code == 0, result.output
    return Path(result.stdout.strip().splitlines()[-1])


def test_create_prints_the_path_last_and_inspect_prints_the_manifest_last(
    env: dict[str, str],
) -> None:
    path = _create()
    assert path.is_file()
    assert path.parent == Path(env["KEEL_BACKUP_TARGET"])
    result = runner.invoke(cli, ["backup", "inspect", str(path)])
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(manifest) == {
        "formatVersion",
        "keelVersion",
        "schemaRevision",
        "createdAt",
        "rowCounts",
        "sha256",
    }
    assert manifest["rowCounts"]["users"] == 0
    assert "NOT encrypted" in runner.invoke(cli, ["backup", "create"]).stderr


def test_verify_passes_a_good_backup_and_fails_one_flipped_byte(
    env: dict[str, str], tmp_path: Path
) -> None:
    path = _create()
    good = runner.invoke(cli, ["backup", "verify", str(path)])
    assert good.exit_code == 0, good.output
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    damaged = tmp_path / "damaged.ndjson.gz"
    damaged.write_bytes(bytes(data))
    bad = runner.invoke(cli, ["backup", "verify", str(damaged)])
    assert bad.exit_code == 1
    assert "damaged" in bad.stderr or "SHA-256" in bad.stderr


def test_encrypted_backup_fails_clearly_with_a_wrong_or_missing_identity(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine, other = x25519.Identity.generate(), x25519.Identity.generate()
    monkeypatch.setenv("KEEL_BACKUP_RECIPIENTS", str(mine.to_public()))
    path = _create()
    assert path.name.endswith(".age")
    key, wrong_key = tmp_path / "mine.key", tmp_path / "other.key"
    key.write_text(f"{mine}\n")
    wrong_key.write_text(f"# not the one\n{other}\n")

    ok = runner.invoke(cli, ["backup", "verify", str(path), "--identity", str(key)])
    assert ok.exit_code == 0, ok.output
    wrong = runner.invoke(cli, ["backup", "inspect", str(path), "--identity", str(wrong_key)])
    assert wrong.exit_code == 1
    assert "does not match any recipient" in wrong.stderr
    missing = runner.invoke(cli, ["backup", "inspect", str(path)])
    assert missing.exit_code == 1
    assert "--identity" in missing.stderr
    data = bytearray(path.read_bytes())
    data[-40] ^= 0x01
    path.write_bytes(bytes(data))
    flipped = runner.invoke(cli, ["backup", "verify", str(path), "--identity", str(key)])
    assert flipped.exit_code == 1
    assert "decryption failed" in flipped.stderr


def test_bad_keys_and_identity_files_are_reported_without_echoing_them(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEEL_BACKUP_RECIPIENTS", "age1notakey")
    assert runner.invoke(cli, ["backup", "create"]).exit_code == 1
    monkeypatch.setenv("KEEL_BACKUP_RECIPIENTS", "")
    path = _create()
    secretish = tmp_path / "typo.key"
    secretish.write_text("AGE-SECRET-KEY-1TYPO\n")
    result = runner.invoke(cli, ["backup", "inspect", str(path), "--identity", str(secretish)])
    assert result.exit_code == 1  # a plain backup ignores --identity, but a bad file is an error
    assert "TYPO" not in result.output
    empty = tmp_path / "empty.key"
    empty.write_text("# nothing\n")
    assert (
        "no age identity"
        in runner.invoke(cli, ["backup", "inspect", str(path), "-i", str(empty)]).stderr
    )
    absent = runner.invoke(cli, ["backup", "inspect", str(path), "-i", str(tmp_path / "nope")])
    assert "cannot read identity file" in absent.stderr
    assert runner.invoke(cli, ["backup", "inspect", str(tmp_path / "none")]).exit_code == 1


def test_restore_refuses_a_non_empty_target_without_force(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _create()
    target = f"sqlite+aiosqlite:///{tmp_path / 'target.db'}"
    monkeypatch.setenv("KEEL_DATABASE_URL", target)
    made = runner.invoke(
        cli, ["create-admin", "--email", "root@example.com", "--password", "x" * 16]
    )
    assert made.exit_code == 0, made.output
    refused = runner.invoke(cli, ["backup", "restore", str(path)])
    assert refused.exit_code == 2
    assert "--force" in refused.stderr
    forced = runner.invoke(cli, ["backup", "restore", str(path), "--force"])
    assert forced.exit_code == 0, forced.output
    assert json.loads(forced.stdout.strip().splitlines()[-1])["rowCounts"]["users"] == 0


def _handmade(path: Path, *, revision: str) -> Path:
    """A well-formed backup (hash and counts right) claiming another schema revision."""
    with path.open("wb") as out:
        writer = ArchiveWriter(out, recipients=[])
        writer.write_header(keel_version="9.0.0", schema_revision=revision, created_at="2030")
        writer.write_table("users", ["id"])
        writer.finish()
    return path


def test_restore_refuses_a_backup_from_a_newer_schema(env: dict[str, str], tmp_path: Path) -> None:
    path = _handmade(tmp_path / "future.ndjson.gz", revision="9999_future")
    result = runner.invoke(cli, ["backup", "restore", str(path)])
    assert result.exit_code == 2
    assert "newer than this Keel" in result.stderr


def test_production_refuses_to_write_an_unencrypted_backup(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KEEL_ENV", "production")
    monkeypatch.setenv("KEEL_ALLOW_SQLITE_IN_PRODUCTION", "true")
    result = runner.invoke(cli, ["backup", "create"])
    assert result.exit_code == 2
    assert "unencrypted" in result.stderr
    assert not (tmp_path / "backups").exists() or not any((tmp_path / "backups").iterdir())
    monkeypatch.setenv("KEEL_BACKUP_SCHEDULE", "3600")
    assert "KEEL_BACKUP_RECIPIENTS" in runner.invoke(cli, ["backup", "create"]).stderr


def test_a_database_behind_the_code_is_not_backed_up(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from keel import migrations

    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    migrations.upgrade(url, "0004")
    monkeypatch.setenv("KEEL_DATABASE_URL", url)
    result = runner.invoke(cli, ["backup", "create"])
    assert result.exit_code == 1
    assert "migrate" in result.stderr


def test_a_newer_format_or_a_foreign_file_is_refused(env: dict[str, str], tmp_path: Path) -> None:
    newer = tmp_path / "newer.ndjson.gz"
    newer.write_bytes(gzip.compress(b'{"kind": "header", "formatVersion": 99}\n'))
    result = runner.invoke(cli, ["backup", "inspect", str(newer)])
    assert result.exit_code == 1
    assert "format version 99 is newer" in result.stderr
    for name, content in {
        "rows-first": b"[1, 2]\n",
        "no-header": b'{"kind": "table", "name": "users", "columns": []}\n',
        "truncated": b'{"kind": "header", "formatVersion": 1}\n',
        "not-json": b"hello\n",
    }.items():
        foreign = tmp_path / f"{name}.ndjson.gz"
        foreign.write_bytes(gzip.compress(content))
        result = runner.invoke(cli, ["backup", "verify", str(foreign)])
        assert result.exit_code == 1, name
        assert "error:" in result.stderr, name
