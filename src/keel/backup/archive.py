"""Keel's portable backup file: JSON lines, gzip-compressed, optionally age-encrypted.

Layout of the plaintext (one JSON value per line):
  {"kind": "header", "formatVersion", "keelVersion", "schemaRevision", "createdAt"}
  {"kind": "table", "name": "users", "columns": [...]}   then one JSON array per row
  ... one table section after another, in foreign-key order ...
  {"kind": "manifest", ...header fields, "rowCounts": {...}, "sha256": "<hex>"}
The SHA-256 covers every byte before the manifest line. The manifest comes last because the
counts are only known at the end, so a backup streams in one pass with flat memory.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import io
import os
import threading
import uuid
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import orjson
import pyrage
from pyrage import x25519
from sqlalchemy import DateTime, LargeBinary, Uuid
from sqlalchemy.types import TypeEngine

FORMAT_VERSION = 1
AGE_MAGIC = b"age-encryption.org/"
_PIPE_CHUNK = 1 << 16


class BackupError(Exception):
    """A backup operation refused or failed; the message is for the operator."""


class BackupCorrupt(BackupError):
    """The file is damaged, truncated or not a Keel backup."""


class BackupLocked(BackupError):
    """The file is encrypted and no matching identity was given."""


@dataclass(frozen=True, slots=True)
class Manifest:
    format_version: int
    keel_version: str
    schema_revision: str
    created_at: str
    row_counts: dict[str, int]
    sha256: str
    encrypted: bool = False

    def to_json(self) -> dict[str, object]:
        return {
            "formatVersion": self.format_version,
            "keelVersion": self.keel_version,
            "schemaRevision": self.schema_revision,
            "createdAt": self.created_at,
            "rowCounts": self.row_counts,
            "sha256": self.sha256,
        }


def parse_recipients(keys: Sequence[str]) -> list[x25519.Recipient]:
    recipients = []
    for key in keys:
        try:
            recipients.append(x25519.Recipient.from_str(key.strip()))
        except pyrage.RecipientError as exc:
            raise BackupError(
                f"KEEL_BACKUP_RECIPIENTS holds an invalid age public key: {key[:12]}…"
            ) from exc
    return recipients


def load_identities(path: Path) -> list[x25519.Identity]:
    """Read an age identity file (AGE-SECRET-KEY-1… lines; '#' comments ignored)."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise BackupError(f"cannot read identity file {path}: {exc.strerror}") from exc
    identities = []
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            identities.append(x25519.Identity.from_str(line))
        except pyrage.IdentityError as exc:
            # Never echo the line: it may be a secret key with a typo.
            raise BackupError(f"{path} is not an age identity file") from exc
    if not identities:
        raise BackupError(f"{path} holds no age identity")
    return identities


def is_encrypted(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(len(AGE_MAGIC)) == AGE_MAGIC


# --- value codecs ---------------------------------------------------------------------------


def _encode_default(value: object) -> object:
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, uuid.UUID):  # asyncpg's own UUID subclass, which orjson passes on
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in a backup")


def encode_row(row: Sequence[object]) -> bytes:
    """One row as a JSON array line; UUIDs and aware datetimes are native to orjson."""
    return orjson.dumps(list(row), default=_encode_default, option=orjson.OPT_APPEND_NEWLINE)


Decoder = Callable[[Any], Any]  # Any: a JSON value in, a column's Python value out


def _identity(value: Any) -> Any:  # Any: passes any JSON value through unchanged
    return value


def decoder_for(column_type: TypeEngine[Any] | None) -> Decoder:
    """How to turn a JSON value back into what the column type binds (UUID, datetime, bytes)."""
    impl = getattr(column_type, "impl", column_type)  # UTCDateTime decorates DateTime
    if isinstance(impl, Uuid):
        return lambda v: None if v is None else uuid.UUID(v)
    if isinstance(impl, DateTime):
        return lambda v: None if v is None else datetime.fromisoformat(v)
    if isinstance(impl, LargeBinary):
        return lambda v: None if v is None else base64.b64decode(v)
    return _identity  # JSON, strings, numbers and booleans are JSON already


# --- streams --------------------------------------------------------------------------------


class _AgeThread:
    """Runs one blocking age call on a thread, fed through an OS pipe (so memory stays flat)."""

    def __init__(self, target: Callable[[], None]) -> None:
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(target,), daemon=True)
        self._thread.start()

    def _run(self, target: Callable[[], None]) -> None:
        try:
            target()
        except BaseException as exc:  # reported by join(); a thread must not die silently
            self.error = exc

    def join(self) -> None:
        self._thread.join()


class _RecordingWriter(io.RawIOBase):
    """Passes writes on and remembers a failure: pyrage can drop an error from its last
    write, and a backup must never end up short without anyone knowing."""

    def __init__(self, out: IO[bytes]) -> None:
        super().__init__()
        self._out = out
        self.error: BaseException | None = None

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:  # Any: bytes-like, as io.RawIOBase.write takes it
        try:
            return self._out.write(data)
        except BaseException as exc:
            self.error = exc
            raise


class ArchiveWriter:
    """Writes a backup file: gzip inside, age (when there are recipients) outside."""

    def __init__(self, out: IO[bytes], *, recipients: Sequence[x25519.Recipient]) -> None:
        self._worker: _AgeThread | None = None
        self._pipe: IO[bytes] | None = None
        raw: IO[bytes] = out
        self._sink = _RecordingWriter(out)
        if recipients:
            read_fd, write_fd = os.pipe()
            reader = os.fdopen(read_fd, "rb")
            sink = self._sink

            def encrypt() -> None:
                with reader:
                    pyrage.encrypt_io(reader, sink, list(recipients))

            self._worker = _AgeThread(encrypt)
            self._pipe = os.fdopen(write_fd, "wb")
            raw = self._pipe
        self._gzip = gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0)
        self._hash = hashlib.sha256()
        self._counts: dict[str, int] = {}
        self._table: str | None = None
        self._header: dict[str, object] = {}

    def _write(self, data: bytes) -> None:
        self._hash.update(data)
        self._gzip.write(data)

    def write_header(self, *, keel_version: str, schema_revision: str, created_at: str) -> None:
        self._header = {
            "formatVersion": FORMAT_VERSION,
            "keelVersion": keel_version,
            "schemaRevision": schema_revision,
            "createdAt": created_at,
        }
        self._write(orjson.dumps({"kind": "header", **self._header}) + b"\n")

    def write_table(self, name: str, columns: Sequence[str]) -> None:
        self._table = str(name)
        self._counts[self._table] = 0
        line = {"kind": "table", "name": self._table, "columns": [str(c) for c in columns]}
        self._write(orjson.dumps(line) + b"\n")

    def write_rows(self, rows: Sequence[Sequence[object]]) -> None:
        assert self._table is not None, "write_table first"
        self._write(b"".join(encode_row(row) for row in rows))
        self._counts[self._table] += len(rows)

    def finish(self) -> Manifest:
        manifest = Manifest(
            format_version=FORMAT_VERSION,
            keel_version=str(self._header["keelVersion"]),
            schema_revision=str(self._header["schemaRevision"]),
            created_at=str(self._header["createdAt"]),
            row_counts=dict(self._counts),
            sha256=self._hash.hexdigest(),
            encrypted=self._worker is not None,
        )
        self._gzip.write(orjson.dumps({"kind": "manifest", **manifest.to_json()}) + b"\n")
        self.close()
        return manifest

    def close(self) -> None:
        """Flush and close every layer; raises what the encrypting thread raised."""
        try:
            self._gzip.close()
        finally:
            if self._pipe is not None:
                # A broken pipe means the encrypting thread died; its error is raised below.
                with contextlib.suppress(BrokenPipeError):
                    self._pipe.close()
            if self._worker is not None:
                self._worker.join()
                error = self._worker.error or self._sink.error
                if error is not None:
                    raise BackupError(f"encryption failed: {error}")


@dataclass
class Section:
    """A table's rows as read from the file, a batch at a time."""

    table: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)  # Any: JSON values of one row


def _translate_decrypt_error(exc: BaseException) -> BackupError:
    text = str(exc)
    if "No matching keys" in text:
        return BackupLocked(
            "the identity does not match any recipient of this backup "
            "(it was encrypted to other public keys)"
        )
    return BackupCorrupt(f"decryption failed, the file is damaged or truncated ({text})")


class ArchiveReader:
    """Reads a backup file, checking the hash and row counts against the manifest."""

    def __init__(self, path: Path, *, identities: Sequence[x25519.Identity] | None) -> None:
        self.path = path
        self.encrypted = is_encrypted(path)
        if self.encrypted and not identities:
            raise BackupLocked(f"{path.name} is encrypted; pass --identity FILE")
        self._source = path.open("rb")
        self._worker: _AgeThread | None = None
        raw: IO[bytes] = self._source
        if self.encrypted:
            assert identities is not None
            read_fd, write_fd = os.pipe()
            writer = os.fdopen(write_fd, "wb")
            source = self._source

            def decrypt() -> None:
                with writer:
                    pyrage.decrypt_io(source, writer, list(identities))

            self._worker = _AgeThread(decrypt)
            raw = os.fdopen(read_fd, "rb")
        self._raw = raw
        self._gzip = gzip.GzipFile(fileobj=raw, mode="rb")
        self.header: dict[str, Any] = {}  # Any: JSON values
        self.manifest: Manifest | None = None

    def _failure(self, exc: BaseException) -> BackupError:
        """The real cause: a decryption error on the thread explains a short gzip stream."""
        if self._worker is not None:
            self._raw.close()
            self._worker.join()
            if self._worker.error is not None:
                return _translate_decrypt_error(self._worker.error)
        if isinstance(exc, BackupError):
            return exc
        return BackupCorrupt(f"{self.path.name} is damaged or not a Keel backup ({exc})")

    def sections(self, batch: int = 1000) -> Iterator[Section]:
        """Yield batches of rows per table; after the last, `manifest` is set and verified."""
        try:
            yield from self._sections(batch)
        except (OSError, EOFError, zlib.error, orjson.JSONDecodeError, BackupError) as exc:
            raise self._failure(exc) from exc

    def _sections(self, batch: int) -> Iterator[Section]:
        digest = hashlib.sha256()
        counts: dict[str, int] = {}
        current: Section | None = None
        for line in self._gzip:
            value = orjson.loads(line)
            if isinstance(value, list):
                if current is None:
                    raise BackupCorrupt("a row before any table")
                digest.update(line)
                current.rows.append(value)
                counts[current.table] += 1
                if len(current.rows) >= batch:
                    yield current
                    current = Section(current.table, current.columns)
                continue
            kind = value.get("kind") if isinstance(value, dict) else None
            if kind == "manifest":
                if current is not None and current.rows:
                    yield current
                self.manifest = self._check_manifest(value, digest.hexdigest(), counts)
                return
            digest.update(line)
            if kind == "header":
                self._check_header(value)
            elif kind == "table" and self.header:
                if current is not None and current.rows:
                    yield current
                current = Section(str(value["name"]), [str(c) for c in value["columns"]])
                counts[current.table] = 0
            else:
                raise BackupCorrupt(f"{self.path.name} is not a Keel backup")
        raise BackupCorrupt(f"{self.path.name} is truncated: it ends before its manifest")

    def _check_header(self, value: dict[str, Any]) -> None:
        version = value.get("formatVersion")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise BackupError(
                f"backup format version {version} is newer than this Keel reads "
                f"({FORMAT_VERSION}); restore it with a newer Keel"
            )
        self.header = value

    def _check_manifest(
        self, value: dict[str, Any], digest: str, counts: dict[str, int]
    ) -> Manifest:
        if not self.header:
            raise BackupCorrupt(f"{self.path.name} has no header")
        if value.get("sha256") != digest:
            raise BackupCorrupt(
                f"{self.path.name} fails its SHA-256 check: the content was altered or damaged"
            )
        if value.get("rowCounts") != counts:
            raise BackupCorrupt(f"{self.path.name}: row counts differ from the manifest")
        # Decryption authenticates the last chunk only at the end of the stream.
        if self._gzip.read(1) != b"":
            raise BackupCorrupt(f"{self.path.name} has data after its manifest")
        return Manifest(
            format_version=int(value["formatVersion"]),
            keel_version=str(value["keelVersion"]),
            schema_revision=str(value["schemaRevision"]),
            created_at=str(value["createdAt"]),
            row_counts={str(k): int(v) for k, v in value["rowCounts"].items()},
            sha256=digest,
            encrypted=self.encrypted,
        )

    def close(self) -> None:
        self._gzip.close()
        self._raw.close()
        if self._worker is not None:
            self._worker.join()
        self._source.close()

    def finish(self) -> Manifest:
        """Close, and raise a decryption error the thread saw after the last line."""
        self._raw.close()
        if self._worker is not None:
            self._worker.join()
            if self._worker.error is not None:
                raise _translate_decrypt_error(self._worker.error)
        assert self.manifest is not None
        return self.manifest


def read_manifest(path: Path, *, identities: Sequence[x25519.Identity] | None) -> Manifest:
    """Read the whole file once: decryption, hash and counts all checked (flat memory)."""
    reader = ArchiveReader(path, identities=identities)
    try:
        for _section in reader.sections(batch=10_000):
            pass
        return reader.finish()
    finally:
        reader.close()
