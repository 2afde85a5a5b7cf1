"""Project pages as rows (with version and per-row cursors), for front doors that shape their
own documents (GraphQL); REST's page documents are listing.py's."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from keel.platform.actor import Actor
from keel.platform.db import set_rls_actor
from keel.projects import repository
from keel.projects.cursors import CursorCodec
from keel.projects.documents import project_json
from keel.projects.listing import SORT_FIELDS, ListQuery
from keel.projects.repository import Keyset, ListFilters


@dataclass(frozen=True, slots=True)
class ProjectRows:
    """A page: each item is the project as the API shows it plus `version` and `cursor` (the
    keyset cursor REST would issue after that row); `has_more` says whether rows follow."""

    # Any: JSON-ready project documents.
    items: list[dict[str, Any]]
    has_more: bool
    total: int | None

    def encode(self) -> bytes:
        return orjson.dumps([self.items, self.has_more, self.total])

    @classmethod
    def decode(cls, raw: bytes) -> ProjectRows:
        """The page a cached document holds; the same object for the same bytes while it is
        recent, so front doors may memoise what they build from it (never mutate it)."""
        return _decode(raw)


@lru_cache(maxsize=256)
def _decode(raw: bytes) -> ProjectRows:
    items, has_more, total = orjson.loads(raw)
    return ProjectRows(items=items, has_more=has_more, total=total)


def rows_page(
    rows: Sequence[Mapping[Any, Any]],
    *,
    limit: int,
    sort: str,
    fingerprint: str,
    total: int | None,
    cursors: CursorCodec,
) -> ProjectRows:
    # Any: row mappings of repository.COLUMNS.
    column = SORT_FIELDS[sort.lstrip("-")]
    items = [
        {
            **project_json(row),
            "version": row["version"],
            "cursor": cursors.encode(fingerprint=fingerprint, value=row[column], row_id=row["id"]),
        }
        for row in rows[:limit]
    ]
    return ProjectRows(items=items, has_more=len(rows) > limit, total=total)


async def render_rows(
    session: AsyncSession,
    actor: Actor,
    query: ListQuery,
    *,
    filters: ListFilters,
    keyset: Keyset | None,
    fingerprint: str,
    cursors: CursorCodec,
) -> bytes:
    """Read the first page (counted, as REST's) or the keyset page after a cursor (not)."""
    await set_rls_actor(session, user_id=actor.user_id, role=actor.role)
    rows = await repository.list_projects(
        session, filters, sort=query.sort, limit=query.limit + 1, after=keyset
    )
    total: int | None = None
    if keyset is None:
        has_more = len(rows) > query.limit
        total = await repository.count_projects(session, filters) if has_more else len(rows)
    page = rows_page(
        rows,
        limit=query.limit,
        sort=query.sort,
        fingerprint=fingerprint,
        total=total,
        cursors=cursors,
    )
    return page.encode()
