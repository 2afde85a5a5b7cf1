"""A project as clients see it: its JSON document, and what a write answers with it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from keel.platform.timestamps import iso_z


def project_json(row: Mapping[Any, Any]) -> dict[str, str | None]:
    """The project as the API shows it (and as the outbox carries it)."""
    # Any: a row mapping of repository.COLUMNS.
    return {
        "id": str(row["id"]),
        "userId": str(row["user_id"]),
        "name": row["name"],
        "description": row["description"],
        "status": row["status"],
        "createdAt": iso_z(row["created_at"]),
        "updatedAt": iso_z(row["updated_at"]),
    }


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    """What a write answers: the status, the project document and its headers."""

    status_code: int
    body: bytes
    etag: str
    location: str | None = None
    replayed: bool = False
