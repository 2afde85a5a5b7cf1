"""How project lists are filtered, searched, paged and rendered (the caching is service.py's)."""

from __future__ import annotations

import math
import unicodedata
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from keel.platform.actor import Actor
from keel.platform.db import set_rls_actor
from keel.platform.errors import ErrorDetail, ValidationFailed
from keel.projects import repository
from keel.projects.cursors import CursorCodec
from keel.projects.documents import project_json
from keel.projects.repository import Keyset, ListFilters

SORT_FIELDS = {"createdAt": "created_at", "updatedAt": "updated_at", "name": "name"}


def fold(text: str) -> str:
    """Caseless form for search: "STRASSE" finds "Straße", "é" typed either way matches."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", text).casefold())


@dataclass(frozen=True, slots=True)
class ListQuery:
    page: int | None = None
    limit: int = 20
    cursor: str | None = None
    status: str | None = None
    q: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    sort: str = "-createdAt"
    user_id: uuid.UUID | None = None


def _to_utc(value: datetime | None, field: str) -> datetime | None:
    if value is None:
        return None
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError as exc:  # e.g. 9999-12-31T23:59:59-14:00
        raise ValidationFailed(
            details=[ErrorDetail(field=field, message="Date-time is out of range")]
        ) from exc


def list_filters(actor: Actor, query: ListQuery) -> ListFilters | None:
    """The filters a list runs with; None when the caller can see nothing of it."""
    owner_id = query.user_id if actor.is_admin else actor.user_id
    if not actor.is_admin and query.user_id not in (None, actor.user_id):
        return None  # another user's projects: not an error, just nothing visible
    created_after = _to_utc(query.created_after, "createdAfter")
    created_before = _to_utc(query.created_before, "createdBefore")
    if created_after and created_before and created_after > created_before:
        raise ValidationFailed(
            details=[ErrorDetail(field="createdBefore", message="Must not be before createdAfter")]
        )
    text = (query.q or "").strip()
    return ListFilters(
        owner_id=owner_id,
        status=query.status,
        search_pattern=f"%{repository.escape_like(fold(text))}%" if text else None,
        created_after=created_after,
        created_before=created_before,
    )


def page_body(
    rows: Sequence[Mapping[Any, Any]],
    *,
    page: int | None,
    limit: int,
    total: int | None,
    next_cursor: str | None,
) -> bytes:
    """The list response document (JSON bytes)."""
    # Any: row mappings of repository.COLUMNS.
    total_pages = None if total is None else math.ceil(total / limit)
    return orjson.dumps(
        {
            "data": [project_json(row) for row in rows],
            "pagination": {
                "page": page,
                "limit": limit,
                "total": total,
                "totalPages": total_pages,
                "nextCursor": next_cursor,
            },
        }
    )


async def render_page(
    session: AsyncSession,
    actor: Actor,
    query: ListQuery,
    *,
    filters: ListFilters,
    keyset: Keyset | None,
    page: int,
    fingerprint: str,
    cursors: CursorCodec,
) -> bytes:
    """Read one page from the database: an offset page, or the keyset page after a cursor."""
    await set_rls_actor(session, user_id=actor.user_id, role=actor.role)
    offset = 0 if keyset is not None else (page - 1) * query.limit
    rows = await repository.list_projects(
        session, filters, sort=query.sort, limit=query.limit + 1, offset=offset, after=keyset
    )
    has_more = len(rows) > query.limit
    shown = list(rows[: query.limit])
    next_cursor = None
    if has_more:
        last = shown[-1]
        next_cursor = cursors.encode(
            fingerprint=fingerprint,
            value=last[SORT_FIELDS[query.sort.lstrip("-")]],
            row_id=last["id"],
        )

    total: int | None
    if keyset is not None:
        total = None  # cursor pages are never counted: that is what keeps them O(limit)
    elif shown and not has_more:
        total = offset + len(shown)  # the last page tells the total without counting
    else:
        total = await repository.count_projects(session, filters)
    return page_body(
        shown,
        page=None if keyset is not None else page,
        limit=query.limit,
        total=total,
        next_cursor=next_cursor,
    )
