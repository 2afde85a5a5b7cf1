"""The identity side of `python -m keel create-admin` and `purge-sessions`."""

from __future__ import annotations

from pydantic import TypeAdapter, ValidationError

from keel.identity import admin, repository
from keel.identity.schemas import RegisterIn
from keel.identity.service import Identity
from keel.platform.db import Database, utcnow


def validate_admin(*, email: str, password: str, name: str) -> RegisterIn:
    """Validate like registration; a ValueError names every problem for the operator."""
    try:
        return TypeAdapter(RegisterIn).validate_python(
            {"email": email, "password": password, "name": name}
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        )
        raise ValueError(problems) from exc


async def create_admin(identity: Identity, data: RegisterIn) -> str:
    """Create or promote; returns a line for the operator.

    The transaction's after-commit work drops the user's cached sessions, so their next
    request carries the new role (through Redis, on every instance).
    """
    async with identity.db.transaction() as session:
        user, created = await admin.ensure_admin(
            session, identity, email=str(data.email), password=data.password, name=data.name
        )
    return f"{'created' if created else 'promoted'} administrator {user.email} ({user.id})"


async def purge_sessions(database: Database) -> int:
    """Delete expired session families; returns the number of rows removed."""
    async with database.transaction() as session:
        return await repository.delete_expired_families(session, before=utcnow())
