"""The identity side of `python -m keel create-admin`."""

from __future__ import annotations

import asyncio

from pydantic import TypeAdapter, ValidationError

from keel.identity import service
from keel.identity.schemas import RegisterIn
from keel.settings import Settings


def create_admin(settings: Settings, *, email: str, password: str, name: str) -> str:
    """Validate like registration, then create or promote; returns a line for the operator."""
    try:
        data = TypeAdapter(RegisterIn).validate_python(
            {"email": email, "password": password, "name": name}
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        )
        raise ValueError(problems) from exc
    return asyncio.run(_create_admin(settings, data))


async def _create_admin(settings: Settings, data: RegisterIn) -> str:
    # The app's own wiring, so the promotion also drops cached roles (shared through Redis).
    from keel.app import create_app

    app = create_app(settings)
    identity: service.Identity = app.state.identity
    try:
        async with app.state.database.sessions() as session, session.begin():
            user, created = await service.ensure_admin(
                session,
                identity,
                email=str(data.email),
                password=data.password,
                name=data.name,
            )
        await identity.drain()  # the post-commit cache invalidation
        return f"{'created' if created else 'promoted'} administrator {user.email} ({user.id})"
    finally:
        await app.state.cache.close()
        if app.state.redis is not None:
            await app.state.redis.aclose()
        identity.hasher.close()
        await app.state.database.dispose()


def purge_sessions(settings: Settings) -> int:
    """Delete expired session families; returns the number of rows removed."""
    return asyncio.run(_purge_sessions(settings))


async def _purge_sessions(settings: Settings) -> int:
    from keel.identity import repository
    from keel.platform.db import Database, utcnow

    database = Database.from_settings(settings)
    try:
        async with database.sessions() as session, session.begin():
            return await repository.delete_expired_families(session, before=utcnow())
    finally:
        await database.dispose()
