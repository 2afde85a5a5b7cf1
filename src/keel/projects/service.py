"""Project rules: who sees and changes what, validation beyond the schemas, and writes with
their audit and outbox rows; the entry points every front door (REST, GraphQL, gRPC) calls."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from keel.audit import service as audit
from keel.platform.actor import Actor, RequestContext
from keel.platform.cache import Cache
from keel.platform.db import (
    InsertRow,
    RlsActor,
    insert_rows,
    may_fill_cache,
    set_rls_actor,
    utcnow,
)
from keel.platform.errors import (
    ErrorDetail,
    Forbidden,
    NotFound,
    PreconditionFailed,
    ValidationFailed,
)
from keel.platform.security import derive_key
from keel.platform.services import Slot
from keel.platform.timestamps import iso_z
from keel.projects import repository
from keel.projects.cache import CachedProject, ProjectCache, mark_dirty
from keel.projects.conditions import etag_for, parse_if_match, parse_project_id
from keel.projects.cursors import CursorCodec, fingerprint
from keel.projects.documents import WriteOutcome, project_json
from keel.projects.idempotency import (
    IdempotencyRequest,
    replay_or_claim,
    request_hash,
    store_response,
)
from keel.projects.listing import ListQuery, fold, list_filters, page_body, render_page
from keel.projects.repository import ListFilters
from keel.projects.rows import ProjectRows, render_rows, rows_page
from keel.projects.schemas import ProjectCreate, ProjectPatch, ProjectReplace
from keel.realtime import service as realtime
from keel.realtime.service import ProjectEventType
from keel.settings import Settings

PROJECTS_PATH = "/api/v1/projects"


@dataclass(frozen=True, slots=True)
class ProjectsRuntime:
    """What the project services need from the app, built once in create_app."""

    cursors: CursorCodec
    cache: ProjectCache
    idempotency_ttl: timedelta
    require_verified_email: bool = False

    @classmethod
    def from_settings(cls, settings: Settings, *, cache: Cache) -> ProjectsRuntime:
        return cls(
            cursors=CursorCodec(derive_key(settings.signing_secret, b"projects-cursor")),
            cache=ProjectCache(cache),
            idempotency_ttl=timedelta(seconds=settings.idempotency_ttl_seconds),
            require_verified_email=settings.require_verified_email,
        )


def check_may_write(actor: Actor, runtime: ProjectsRuntime) -> None:
    """KEEL_REQUIRE_VERIFIED_EMAIL: project writes need a verified address (SPEC §11).

    Checked here, where every front door (REST, GraphQL, gRPC) writes; the profile is the
    one authentication read, dropped from the cache whenever verification changes.
    """
    if not runtime.require_verified_email:
        return
    if actor.profile is None or not actor.profile.get("emailVerified", False):
        raise Forbidden(
            "Verify your e-mail address before changing projects", code="EMAIL_NOT_VERIFIED"
        )


PROJECTS: Slot[ProjectsRuntime] = Slot("projects")


# --- listing --------------------------------------------------------------------------------


async def list_visible_projects(
    session: AsyncSession, actor: Actor, query: ListQuery, *, runtime: ProjectsRuntime
) -> bytes:
    """A page of the projects the actor may see, as the response document (JSON bytes)."""
    if query.cursor is not None and query.page is not None:
        raise ValidationFailed(
            details=[ErrorDetail(field="cursor", message="Use either page or cursor, not both")]
        )
    filters = list_filters(actor, query)
    if filters is None:
        return page_body([], page=query.page or 1, limit=query.limit, total=0, next_cursor=None)
    issued_for = fingerprint(query.sort, filters)
    keyset = (
        runtime.cursors.decode(query.cursor, fingerprint=issued_for, sort=query.sort)
        if query.cursor is not None
        else None
    )
    page = query.page or 1

    async def render() -> bytes:
        return await render_page(
            session,
            actor,
            query,
            filters=filters,
            keyset=keyset,
            page=page,
            fingerprint=issued_for,
            cursors=runtime.cursors,
        )

    if keyset is not None or page != 1:
        return await render()
    # First pages are the hot read; deeper ones are rare enough to go to the database. Every
    # caller sharing a key sees the same rows (one owner's, or all for admins), so concurrent
    # misses may share one query.
    key = await runtime.cache.page_key(
        owner_id=filters.owner_id, fingerprint=issued_for, limit=query.limit
    )
    if not await may_fill_cache(session):  # a replica behind the newest write
        return await runtime.cache.get(key) or await render()
    return await runtime.cache.get_or_set(key, render)


# --- one project ----------------------------------------------------------------------------


def _visible(actor: Actor, project: CachedProject) -> CachedProject:
    if not actor.is_admin and project.owner_id != actor.user_id:
        raise NotFound("Project not found")  # another user's project: as if it did not exist
    return project


async def cached_project(
    actor: Actor, raw_id: str, *, runtime: ProjectsRuntime
) -> CachedProject | None:
    """`get_project` from the cache alone, with no session: None when it is not cached."""
    key = await runtime.cache.project_key(parse_project_id(raw_id))
    cached = await runtime.cache.get_project(key)
    return None if cached is None else _visible(actor, cached)


async def get_project(
    session: AsyncSession, actor: Actor, raw_id: str, *, runtime: ProjectsRuntime
) -> CachedProject:
    """A live project the actor may see; another user's project is NotFound, like a missing one."""
    project_id = parse_project_id(raw_id)
    key = await runtime.cache.project_key(project_id)
    cached = await runtime.cache.get_project(key)
    if cached is not None:
        return _visible(actor, cached)
    fillable = await may_fill_cache(session)  # after the key, before the read
    await set_rls_actor(session, user_id=actor.user_id, role=actor.role)
    row = await repository.get_live_project(
        session, project_id, owner_id=None if actor.is_admin else actor.user_id
    )
    if row is None:
        raise NotFound("Project not found")
    found = CachedProject(
        version=row["version"], owner_id=row["user_id"], body=orjson.dumps(project_json(row))
    )
    if fillable:
        await runtime.cache.put_project(key, found)
    return found


# --- writes ---------------------------------------------------------------------------------


async def _record_write(
    session: AsyncSession,
    actor: Actor,
    *,
    runtime: ProjectsRuntime,
    event_type: ProjectEventType,
    payload: dict[str, str | None],
    version: int,
    project_id: uuid.UUID,
    owner_id: uuid.UUID,
    context: RequestContext,
    details: dict[str, Any] | None = None,
    rows: Sequence[InsertRow] = (),
    alone: bool = False,
) -> None:
    """Write `rows` with the audit and outbox rows of the change, in one statement with the
    RLS settings (on PostgreSQL), and renew the cache once the transaction commits.
    `alone`: that statement is the whole transaction (see insert_rows)."""
    # Any: JSON-ready audit details.
    audit_row = audit.entry_row(
        action=event_type,
        context=context,
        actor_id=actor.user_id,
        target_type="project",
        target_id=project_id,
        details=details,
    )
    # Events also carry the version (GraphQL's Project.version; clients can compare ETags).
    event_row = realtime.project_event_row(
        session,
        event_type=event_type,
        project_id=project_id,
        owner_id=owner_id,
        payload={**payload, "version": version},
    )
    await insert_rows(
        session,
        [*rows, audit_row, event_row],
        rls=RlsActor(actor.user_id, actor.role),
        alone=alone,
    )
    mark_dirty(session, runtime.cache, project_id=project_id, owner_id=owner_id)


async def create_project(
    session: AsyncSession,
    actor: Actor,
    data: ProjectCreate,
    *,
    context: RequestContext,
    runtime: ProjectsRuntime,
    idempotency: IdempotencyRequest | None = None,
    alone: bool = False,
) -> WriteOutcome:
    """Create a project owned by the actor; with an Idempotency-Key, at most once per key.

    On PostgreSQL the RLS settings, project, audit row and outbox event are one statement;
    `alone` (the caller's transaction holds nothing else) runs it as its own transaction.
    """
    check_may_write(actor, runtime)
    now = utcnow()
    if idempotency is not None:  # its table has no row-level security
        replay = await replay_or_claim(
            session,
            actor,
            key=idempotency.key,
            request_hash=request_hash(data),
            now=now,
            ttl=runtime.idempotency_ttl,
        )
        if replay is not None:
            return replay
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "user_id": actor.user_id,
        "name": data.name,
        "description": data.description,
        "status": data.status,
        "version": 1,
        "created_at": now,
        "updated_at": now,
        "search_name": fold(data.name),
        "search_description": None if data.description is None else fold(data.description),
    }
    payload = project_json(values)
    await _record_write(
        session,
        actor,
        runtime=runtime,
        event_type="project.created",
        payload=payload,
        version=1,
        project_id=values["id"],
        owner_id=actor.user_id,
        context=context,
        rows=[(repository.projects, values)],
        # Without an Idempotency-Key the create is this one statement: no BEGIN, no COMMIT.
        alone=alone and idempotency is None,
    )
    outcome = WriteOutcome(
        status_code=201,
        body=orjson.dumps(payload),
        etag=etag_for(1),
        location=f"{PROJECTS_PATH}/{values['id']}",
    )
    if idempotency is not None:
        await store_response(session, actor, key=idempotency.key, outcome=outcome)
    return outcome


async def _conditional_update(
    session: AsyncSession,
    actor: Actor,
    raw_id: str,
    *,
    values: dict[str, Any],
    if_match: str | None,
) -> Mapping[Any, Any]:
    # Any: column values and the returned row mapping.
    project_id = parse_project_id(raw_id)
    await set_rls_actor(session, user_id=actor.user_id, role=actor.role)
    owner_filter = None if actor.is_admin else actor.user_id
    row = await repository.update_live_project(
        session,
        project_id,
        owner_id=owner_filter,
        expected_versions=parse_if_match(if_match),
        values=values,
    )
    if row is not None:
        return row
    if await repository.get_live_project(session, project_id, owner_id=owner_filter) is None:
        raise NotFound("Project not found")
    raise PreconditionFailed()


def _changes(data: ProjectReplace | ProjectPatch) -> dict[str, Any]:
    # Any: column values.
    if isinstance(data, ProjectReplace):
        changes: dict[str, Any] = data.model_dump()
    else:
        changes = data.model_dump(exclude_unset=True)
        if not changes:
            raise ValidationFailed(
                details=[ErrorDetail(field="body", message="Give at least one field to change")]
            )
    if "name" in changes:
        changes["search_name"] = fold(changes["name"])
    if "description" in changes:
        description = changes["description"]
        changes["search_description"] = None if description is None else fold(description)
    return changes


async def update_project(
    session: AsyncSession,
    actor: Actor,
    raw_id: str,
    data: ProjectReplace | ProjectPatch,
    *,
    if_match: str | None,
    context: RequestContext,
    runtime: ProjectsRuntime,
) -> WriteOutcome:
    """PUT (ProjectReplace: every field) or PATCH (ProjectPatch: the fields given)."""
    check_may_write(actor, runtime)
    changes = _changes(data)
    fields = sorted(key for key in changes if not key.startswith("search_"))
    row = await _conditional_update(
        session, actor, raw_id, values={**changes, "updated_at": utcnow()}, if_match=if_match
    )
    payload = project_json(row)
    await _record_write(
        session,
        actor,
        runtime=runtime,
        event_type="project.updated",
        payload=payload,
        version=row["version"],
        project_id=row["id"],
        owner_id=row["user_id"],
        context=context,
        details={"fields": fields},
    )
    return WriteOutcome(status_code=200, body=orjson.dumps(payload), etag=etag_for(row["version"]))


async def delete_project(
    session: AsyncSession,
    actor: Actor,
    raw_id: str,
    *,
    if_match: str | None,
    context: RequestContext,
    runtime: ProjectsRuntime,
) -> None:
    """Soft-delete: the row stays (invisible) until purge removes it after the retention."""
    check_may_write(actor, runtime)
    now = utcnow()
    row = await _conditional_update(
        session, actor, raw_id, values={"deleted_at": now, "updated_at": now}, if_match=if_match
    )
    await _record_write(
        session,
        actor,
        runtime=runtime,
        event_type="project.deleted",
        payload=project_json(row),
        version=row["version"],
        project_id=row["id"],
        owner_id=row["user_id"],
        context=context,
    )


async def delete_all_of_owner(
    session: AsyncSession, actor: Actor, *, context: RequestContext, runtime: ProjectsRuntime
) -> int:
    """Delete every live project of the actor, as account erasure starts.

    Each one is audited, announced as `project.deleted` (admins watching live see it) and
    marked for cache invalidation, exactly like a single delete; the account's cascade then
    removes the rows.
    """
    await set_rls_actor(session, user_id=actor.user_id, role=actor.role)
    ids = await repository.live_project_ids_of_owner(session, actor.user_id)
    for project_id in ids:
        await delete_project(
            session, actor, str(project_id), if_match=None, context=context, runtime=runtime
        )
    return len(ids)


async def export_of_owner(session: AsyncSession, actor: Actor) -> list[dict[str, str | None]]:
    """Every project the actor owns, soft-deleted ones included, as the API shows them plus
    `deletedAt` (for the owner's data export)."""
    await set_rls_actor(session, user_id=actor.user_id, role=actor.role)
    rows = await repository.all_projects_of_owner(session, actor.user_id)
    return [
        {
            **project_json(row),
            "deletedAt": iso_z(row["deleted_at"]) if row["deleted_at"] else None,
        }
        for row in rows
    ]


# --- rows for other front doors (GraphQL) ---------------------------------------------------


async def list_visible_project_rows(
    session: AsyncSession, actor: Actor, query: ListQuery, *, runtime: ProjectsRuntime
) -> ProjectRows:
    """Like list_visible_projects (same rules, cursors and cache invalidation), as rows for
    front doors that shape their own documents (GraphQL). Cursor pages only (no `page`)."""
    filters = list_filters(actor, query)
    if filters is None:
        return ProjectRows(items=[], has_more=False, total=0)
    issued_for = fingerprint(query.sort, filters)
    keyset = (
        runtime.cursors.decode(query.cursor, fingerprint=issued_for, sort=query.sort)
        if query.cursor is not None
        else None
    )

    async def render() -> bytes:
        return await render_rows(
            session,
            actor,
            query,
            filters=filters,
            keyset=keyset,
            fingerprint=issued_for,
            cursors=runtime.cursors,
        )

    if keyset is not None:
        return ProjectRows.decode(await render())
    key = await runtime.cache.page_key(
        owner_id=filters.owner_id, fingerprint=f"rows:{issued_for}", limit=query.limit
    )
    return ProjectRows.decode(await runtime.cache.get_or_set(key, render))


async def first_projects_of_owners(
    session: AsyncSession,
    actor: Actor,
    owner_ids: Sequence[uuid.UUID],
    *,
    limit: int,
    runtime: ProjectsRuntime,
) -> dict[uuid.UUID, ProjectRows]:
    """The newest `limit` live projects of each owner in two queries, whatever the number of
    owners (GraphQL's `User.projects`); owners the actor may not list get none. The cursors
    continue with list_visible_project_rows(user_id=owner)."""
    visible = [o for o in owner_ids if actor.is_admin or o == actor.user_id]
    pages = {owner: ProjectRows(items=[], has_more=False, total=0) for owner in owner_ids}
    if not visible:
        return pages
    await set_rls_actor(session, user_id=actor.user_id, role=actor.role)
    rows = await repository.first_projects_of_owners(session, visible, limit=limit + 1)
    totals = await repository.count_projects_of_owners(session, visible)
    by_owner: dict[uuid.UUID, list[Mapping[Any, Any]]] = {}
    for row in rows:
        by_owner.setdefault(row["user_id"], []).append(row)
    for owner in visible:
        pages[owner] = rows_page(
            by_owner.get(owner, []),
            limit=limit,
            sort="-createdAt",
            fingerprint=fingerprint("-createdAt", ListFilters(owner_id=owner)),
            total=totals.get(owner, 0),
            cursors=runtime.cursors,
        )
    return pages
