"""The backup file format on its own: hash, counts, batches, value codecs, tampering."""

from __future__ import annotations

import gzip
import hashlib
import io
import uuid
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from pyrage import x25519
from sqlalchemy import JSON, Integer, LargeBinary

from keel.backup.archive import (
    ArchiveReader,
    ArchiveWriter,
    BackupCorrupt,
    BackupError,
    decoder_for,
    encode_row,
    read_manifest,
)
from keel.platform.db import UTCDateTime, UUIDType

HEADER = {"kind": "header", "formatVersion": 1, "keelVersion": "0.1.0"}
HEADER |= {"schemaRevision": "0005", "createdAt": "2026-11-30T00:00:00Z"}


def _file(path: Path, lines: list[object], *, manifest: dict[str, object] | None = None) -> Path:
    body = b"".join(orjson.dumps(line) + b"\n" for line in lines)
    digest = hashlib.sha256(body).hexdigest()
    trailer = {**HEADER, "kind": "manifest", "rowCounts": {"t": 2}, "sha256": digest}
    trailer.update(manifest or {})
    path.write_bytes(gzip.compress(body + orjson.dumps(trailer) + b"\n"))
    return path


def _lines() -> list[object]:
    return [HEADER, {"kind": "table", "name": "t", "columns": ["a"]}, [1], [2]]


def test_a_well_formed_file_reads_in_batches_of_the_asked_size(tmp_path: Path) -> None:
    reader = ArchiveReader(_file(tmp_path / "ok", _lines()), identities=None)
    try:
        batches = [section.rows for section in reader.sections(batch=1)]
        assert batches == [[[1]], [[2]]]
        assert reader.finish().row_counts == {"t": 2}
    finally:
        reader.close()


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        ({"sha256": "0" * 64}, "SHA-256"),
        ({"rowCounts": {"t": 3}}, "row counts"),
    ],
)
def test_a_manifest_that_does_not_match_the_content_is_corrupt(
    tmp_path: Path, manifest: dict[str, object], message: str
) -> None:
    path = _file(tmp_path / "bad", _lines(), manifest=manifest)
    with pytest.raises(BackupCorrupt, match=message):
        read_manifest(path, identities=None)


def test_an_edited_row_fails_the_hash_even_when_it_is_valid_json(tmp_path: Path) -> None:
    path = _file(tmp_path / "ok", _lines())
    edited = gzip.decompress(path.read_bytes()).replace(b"[2]\n", b"[3]\n", 1)
    path.write_bytes(gzip.compress(edited))
    with pytest.raises(BackupCorrupt, match="SHA-256"):
        read_manifest(path, identities=None)


def test_data_after_the_manifest_or_a_manifest_without_header_is_corrupt(tmp_path: Path) -> None:
    path = _file(tmp_path / "ok", _lines())
    path.write_bytes(path.read_bytes() + gzip.compress(b"[4]\n"))
    with pytest.raises(BackupCorrupt, match="after its manifest"):
        read_manifest(path, identities=None)
    lonely = tmp_path / "lonely"
    lonely.write_bytes(gzip.compress(orjson.dumps({"kind": "manifest"}) + b"\n"))
    with pytest.raises(BackupCorrupt, match="no header"):
        read_manifest(lonely, identities=None)


def test_values_round_trip_through_their_column_types() -> None:
    now = datetime.now(UTC)
    value = uuid.uuid4()
    row = orjson.loads(encode_row([value, now, b"\x00\xff", {"k": [1]}, 7]))
    types = [UUIDType, UTCDateTime(), LargeBinary(), JSON(), Integer()]
    decoded = [decoder_for(t)(v) for t, v in zip(types, row, strict=True)]
    assert decoded == [value, now, b"\x00\xff", {"k": [1]}, 7]
    assert [decoder_for(t)(None) for t in types[:3]] == [None, None, None]
    with pytest.raises(TypeError):
        encode_row([object()])


def test_an_encryption_failure_is_reported_not_swallowed() -> None:
    class Full(io.RawIOBase):
        def writable(self) -> bool:
            return True

        def write(self, data: object) -> int:
            raise OSError(28, "No space left on device")

    writer = ArchiveWriter(Full(), recipients=[x25519.Identity.generate().to_public()])
    writer.write_header(keel_version="0", schema_revision="0005", created_at="now")
    writer.write_table("t", ["a"])
    writer.write_rows([[b"x" * 1024] for _ in range(512)])
    with pytest.raises(BackupError, match="encryption failed"):
        writer.finish()
