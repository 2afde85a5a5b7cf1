"""Project queries, in SQLAlchemy Core: the list path returns plain rows, no ORM objects.

Search (`q`) is a substring match with LIKE on the case-folded copies of name and
description. On PostgreSQL trigram GIN indexes serve it (migration 0003). On SQLite it is an
honest LIKE that scans the caller's live rows: fine for the embedded shape's scale (tens of
thousands of projects); beyond that, run the scaled-out shape.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    RowMapping,
    Select,
    Table,
    and_,
    delete,
    func,
    literal,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from keel.projects.models import IdempotencyKey, Project

projects = cast(Table, Project.__table__)
idempotency_keys = cast(Table, IdempotencyKey.__table__)

# What the API shows of a project (plus version, for the ETag).
COLUMNS = (
    projects.c.id,
    projects.c.user_id,
    projects.c.name,
    projects.c.description,
    projects.c.status,
    projects.c.version,
    projects.c.created_at,
    projects.c.updated_at,
)
SORT_COLUMNS = {
    "createdAt": projects.c.created_at,
    "updatedAt": projects.c.updated_at,
    "name": projects.c.name,
}


@dataclass(frozen=True, slots=True)
class ListFilters:
    """Which live projects a list shows. owner_id None means every owner (admins only)."""

    owner_id: uuid.UUID | None
    status: str | None = None
    search_pattern: str | None = None  # an escaped LIKE pattern over folded text
    created_after: datetime | None = None
    created_before: datetime | None = None


@dataclass(frozen=True, slots=True)
class Keyset:
    """The sort value and id of the last row already shown."""

    value: datetime | str
    id: uuid.UUID


def escape_like(text: str) -> str:
    """Make user text match literally inside a LIKE pattern (escape character: backslash)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _conditions(filters: ListFilters) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [projects.c.deleted_at.is_(None)]
    if filters.owner_id is not None:
        conditions.append(projects.c.user_id == filters.owner_id)
    if filters.status is not None:
        conditions.append(projects.c.status == filters.status)
    if filters.search_pattern is not None:
        pattern = filters.search_pattern
        conditions.append(
            or_(
                projects.c.search_name.like(pattern, escape="\\"),
                projects.c.search_description.like(pattern, escape="\\"),
            )
        )
    if filters.created_after is not None:
        conditions.append(projects.c.created_at >= filters.created_after)
    if filters.created_before is not None:
        conditions.append(projects.c.created_at < filters.created_before)
    return conditions


def list_statement(
    filters: ListFilters,
    *,
    sort: str,
    limit: int,
    offset: int = 0,
    after: Keyset | None = None,
) -> Select[Any]:
    """One page, ordered by the sort key with id as tiebreak so the order is total."""
    # Any: the row tuple of COLUMNS.
    descending = sort.startswith("-")
    column = SORT_COLUMNS[sort.lstrip("-")]
    conditions = _conditions(filters)
    if after is not None:
        current = tuple_(column, projects.c.id)
        bound = tuple_(literal(after.value, column.type), literal(after.id, projects.c.id.type))
        conditions.append(current < bound if descending else current > bound)
    order = (
        (column.desc(), projects.c.id.desc()) if descending else (column.asc(), projects.c.id.asc())
    )
    statement = select(*COLUMNS).where(and_(*conditions)).order_by(*order).limit(limit)
    return statement.offset(offset) if offset else statement


def count_statement(filters: ListFilters) -> Select[int]:
    return select(func.count()).select_from(projects).where(and_(*_conditions(filters)))


async def list_projects(
    session: AsyncSession,
    filters: ListFilters,
    *,
    sort: str,
    limit: int,
    offset: int = 0,
    after: Keyset | None = None,
) -> Sequence[RowMapping]:
    statement = list_statement(filters, sort=sort, limit=limit, offset=offset, after=after)
    rows: Sequence[RowMapping] = (await session.execute(statement)).mappings().all()
    return rows


async def count_projects(session: AsyncSession, filters: ListFilters) -> int:
    count: int = (await session.execute(count_statement(filters))).scalar_one()
    return count


async def get_live_project(
    session: AsyncSession, project_id: uuid.UUID, *, owner_id: uuid.UUID | None
) -> RowMapping | None:
    statement = select(*COLUMNS).where(projects.c.id == project_id, projects.c.deleted_at.is_(None))
    if owner_id is not None:
        statement = statement.where(projects.c.user_id == owner_id)
    return (await session.execute(statement)).mappings().first()


async def insert_project(session: AsyncSession, values: Mapping[str, Any]) -> None:
    # Any: column values of one row.
    await session.execute(projects.insert().values(**values))


async def update_live_project(
    session: AsyncSession,
    project_id: uuid.UUID,
    *,
    owner_id: uuid.UUID | None,
    expected_versions: frozenset[int] | None,
    values: Mapping[str, Any],
) -> RowMapping | None:
    """Change a live project in one conditional UPDATE … RETURNING; None when nothing matched.

    The version check happens inside the UPDATE, so of two writers holding the same version
    exactly one wins (the other's WHERE no longer matches once the first commits).
    """
    # Any: column values to set.
    statement = update(projects).where(projects.c.id == project_id, projects.c.deleted_at.is_(None))
    if owner_id is not None:
        statement = statement.where(projects.c.user_id == owner_id)
    if expected_versions is not None:
        statement = statement.where(projects.c.version.in_(sorted(expected_versions)))
    statement = statement.values(**values, version=projects.c.version + 1).returning(*COLUMNS)
    return (await session.execute(statement)).mappings().first()


async def purge_deleted(session: AsyncSession, *, deleted_before: datetime, batch: int) -> int:
    """Hard-delete up to `batch` projects soft-deleted before the cutoff; returns how many."""
    doomed = (
        select(projects.c.id)
        .where(projects.c.deleted_at.is_not(None), projects.c.deleted_at < deleted_before)
        .limit(batch)
        .scalar_subquery()
    )
    result = await session.execute(
        delete(projects).where(projects.c.id.in_(doomed)).returning(projects.c.id)
    )
    return len(result.all())


async def purge_idempotency_keys(session: AsyncSession, *, now: datetime) -> int:
    result = await session.execute(
        delete(idempotency_keys)
        .where(idempotency_keys.c.expires_at <= now)
        .returning(idempotency_keys.c.key)
    )
    return len(result.all())


# --- idempotency keys ----------------------------------------------------------------------


async def claim_idempotency_key(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    key: str,
    request_hash: str,
    now: datetime,
    expires_at: datetime,
) -> bool:
    """Insert the key unless it exists; True when this transaction now owns it.

    A concurrent claimant waits on the primary key until the owner's transaction ends
    (PostgreSQL's ON CONFLICT; SQLite's single writer lock), then sees its committed row.
    """
    values = {
        "user_id": user_id,
        "key": key,
        "request_hash": request_hash,
        "created_at": now,
        "expires_at": expires_at,
    }
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = (
        insert(idempotency_keys)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["user_id", "key"])
        .returning(idempotency_keys.c.key)
    )
    return (await session.execute(statement)).first() is not None


async def get_idempotency_key(
    session: AsyncSession, *, user_id: uuid.UUID, key: str
) -> RowMapping | None:
    statement = select(idempotency_keys).where(
        idempotency_keys.c.user_id == user_id, idempotency_keys.c.key == key
    )
    return (await session.execute(statement)).mappings().first()


async def release_expired_idempotency_key(
    session: AsyncSession, *, user_id: uuid.UUID, key: str, now: datetime
) -> None:
    await session.execute(
        delete(idempotency_keys).where(
            idempotency_keys.c.user_id == user_id,
            idempotency_keys.c.key == key,
            idempotency_keys.c.expires_at <= now,
        )
    )


async def store_idempotent_response(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    key: str,
    status_code: int,
    body: bytes,
    location: str | None,
    etag: str | None,
) -> None:
    await session.execute(
        update(idempotency_keys)
        .where(idempotency_keys.c.user_id == user_id, idempotency_keys.c.key == key)
        .values(status_code=status_code, response_body=body, location=location, etag=etag)
    )


async def live_project_ids_of_owner(session: AsyncSession, owner_id: uuid.UUID) -> list[uuid.UUID]:
    result = await session.execute(
        select(projects.c.id).where(projects.c.user_id == owner_id, projects.c.deleted_at.is_(None))
    )
    return list(result.scalars())


async def all_projects_of_owner(session: AsyncSession, owner_id: uuid.UUID) -> Sequence[RowMapping]:
    """Every project of an owner, deleted ones included, oldest first (for data export)."""
    statement = (
        select(projects).where(projects.c.user_id == owner_id).order_by(projects.c.created_at)
    )
    return (await session.execute(statement)).mappings().all()


async def first_projects_of_owners(
    session: AsyncSession, owner_ids: Sequence[uuid.UUID], *, limit: int
) -> Sequence[RowMapping]:
    """Each owner's newest `limit` live projects (newest first, id as tiebreak), one query."""
    rank = (
        func.row_number()
        .over(
            partition_by=projects.c.user_id,
            order_by=(projects.c.created_at.desc(), projects.c.id.desc()),
        )
        .label("rank")
    )
    ranked = (
        select(*COLUMNS, rank)
        .where(projects.c.user_id.in_(owner_ids), projects.c.deleted_at.is_(None))
        .subquery()
    )
    statement = (
        select(*(ranked.c[column.name] for column in COLUMNS))
        .where(ranked.c.rank <= limit)
        .order_by(ranked.c.user_id, ranked.c.rank)
    )
    return (await session.execute(statement)).mappings().all()


async def count_projects_of_owners(
    session: AsyncSession, owner_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, int]:
    statement = (
        select(projects.c.user_id, func.count())
        .where(projects.c.user_id.in_(owner_ids), projects.c.deleted_at.is_(None))
        .group_by(projects.c.user_id)
    )
    return {owner: int(count) for owner, count in (await session.execute(statement)).all()}
