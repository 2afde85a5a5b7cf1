"""Project rules: who sees and changes what, validation beyond the schemas, writes with their
audit and outbox rows, cursors, idempotent creation, read-through caching and purging."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import secrets
import unicodedata
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from keel.audit import service as audit
from keel.platform.actor import Actor, RequestContext
from keel.platform.cache import Cache
from keel.platform.db import Database, after_commit, set_rls_actor, utcnow
from keel.platform.errors import (
    Conflict,
    ErrorDetail,
    NotFound,
    PreconditionFailed,
    UnprocessableEntity,
    ValidationFailed,
)
from keel.platform.security import derive_key
from keel.platform.services import Slot
from keel.platform.timestamps import iso_z
from keel.projects import repository
from keel.projects.repository import Keyset, ListFilters
from keel.projects.schemas import ProjectCreate, ProjectPatch, ProjectReplace
from keel.realtime import service as realtime
from keel.realtime.service import ProjectEventType
from keel.settings import Settings

PROJECTS_PATH = "/api/v1/projects"
# Maintenance (purge) acts as this pseudo-user with role 'system' under row-level security.
SYSTEM_ACTOR_ID = uuid.UUID(int=0)
_DIRTY = "keel.projects.dirty"


def fold(text: str) -> str:
    """Caseless form for search: "STRASSE" finds "Straße", "é" typed either way matches."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", text).casefold())


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


def etag_for(version: int) -> str:
    return f'"{version}"'


def parse_if_match(header: str | None) -> frozenset[int] | None:
    """The versions an If-Match header accepts; None when any version will do (absent or *).

    Strong comparison (RFC 9110): weak tags and anything that is not one of our ETags match
    nothing, so a garbled header fails the precondition instead of being ignored.
    """
    if header is None or header.strip() == "*":
        return None
    versions: set[int] = set()
    for part in header.split(","):
        tag = part.strip()
        if tag.startswith("W/"):
            continue
        tag = tag.strip('"')
        if tag.isascii() and tag.isdigit() and len(tag) < 10:
            versions.add(int(tag))
    return frozenset(versions)


def if_none_match_hits(header: str | None, version: int) -> bool:
    """Weak comparison, as RFC 9110 prescribes for If-None-Match."""
    if header is None:
        return False
    tags = {part.strip().removeprefix("W/") for part in header.split(",")}
    return "*" in tags or etag_for(version) in tags


def parse_project_id(raw: str) -> uuid.UUID:
    """Malformed ids name no project: 404, the same as an id that does not exist."""
    if len(raw) > 64:
        raise NotFound("Project not found")
    try:
        return uuid.UUID(raw)
    except ValueError as exc:
        raise NotFound("Project not found") from exc


def _to_utc(value: datetime | None, field: str) -> datetime | None:
    if value is None:
        return None
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError as exc:  # e.g. 9999-12-31T23:59:59-14:00
        raise ValidationFailed(
            details=[ErrorDetail(field=field, message="Date-time is out of range")]
        ) from exc


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class CursorCodec:
    """Opaque keyset cursors, signed so that a client can neither forge nor edit one.

    A cursor also carries a fingerprint of the sort and filters it was issued for; using it
    with other ones is a 400 rather than a silently wrong page.
    """

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:16]

    def encode(self, *, fingerprint: str, value: datetime | str, row_id: uuid.UUID) -> str:
        raw = value if isinstance(value, str) else value.astimezone(UTC).isoformat()
        payload = orjson.dumps({"f": fingerprint, "v": raw, "i": str(row_id)})
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def decode(self, token: str, *, fingerprint: str, sort: str) -> Keyset:
        invalid = ValidationFailed(details=[ErrorDetail(field="cursor", message="Invalid cursor")])
        try:
            body, mac = token.split(".")
            payload = _unb64(body)
            if not hmac.compare_digest(_unb64(mac), self._mac(payload)):
                raise invalid
            data = orjson.loads(payload)
            if data["f"] != fingerprint:
                raise ValidationFailed(
                    details=[
                        ErrorDetail(
                            field="cursor",
                            message="Cursor was issued for another sort or other filters",
                        )
                    ]
                )
            value: datetime | str = str(data["v"])
            if sort.lstrip("-") != "name":
                value = datetime.fromisoformat(str(data["v"])).astimezone(UTC)
            return Keyset(value=value, id=uuid.UUID(str(data["i"])))
        except (ValueError, KeyError, TypeError, binascii.Error, orjson.JSONDecodeError) as exc:
            raise invalid from exc


@dataclass(frozen=True, slots=True)
class CachedProject:
    version: int
    owner_id: uuid.UUID
    body: bytes

    def encode(self) -> bytes:
        return f"{self.version}|{self.owner_id}|".encode() + self.body

    @classmethod
    def decode(cls, raw: bytes) -> CachedProject:
        version, owner, body = raw.split(b"|", 2)
        return cls(version=int(version), owner_id=uuid.UUID(owner.decode()), body=body)


class ProjectCache:
    """Read-through cache of single projects and first list pages, by generation tokens.

    Entries are keyed by a random token per project, per owner and for the all-owners
    (admin) list; a write replaces those tokens after its commit, which orphans every entry
    built from older data. A reader fetches the token before it reads the database, so an
    entry built from data older than a write is always filed under a token the write
    replaced. A token that has expired or been evicted is simply recreated (a miss).
    Lifetimes are the cache's own (L1/L2 TTL settings), so its staleness bounds hold.
    """

    def __init__(self, cache: Cache) -> None:
        self._cache = cache

    async def token(self, scope: str) -> str:
        key = f"projects:token:{scope}"
        raw = await self._cache.get(key)
        if raw is not None:
            return raw.decode()
        token = secrets.token_hex(8)
        await self._cache.set(key, token.encode())
        return token

    async def get(self, key: str) -> bytes | None:
        return await self._cache.get(key)

    async def put(self, key: str, value: bytes) -> None:
        await self._cache.set(key, value)

    async def get_or_set(self, key: str, compute: Callable[[], Awaitable[bytes]]) -> bytes:
        """Concurrent misses on one key run `compute` once (per instance)."""
        return await self._cache.get_or_set(key, compute)

    async def renew(self, scopes: set[str]) -> None:
        for scope in sorted(scopes):
            await self._cache.set(f"projects:token:{scope}", secrets.token_hex(8).encode())


@dataclass(frozen=True, slots=True)
class ProjectsRuntime:
    """What the project services need from the app, built once in create_app."""

    cursors: CursorCodec
    cache: ProjectCache
    idempotency_ttl: timedelta

    @classmethod
    def from_settings(cls, settings: Settings, *, cache: Cache) -> ProjectsRuntime:
        return cls(
            cursors=CursorCodec(derive_key(settings.signing_secret, b"projects-cursor")),
            cache=ProjectCache(cache),
            idempotency_ttl=timedelta(seconds=settings.idempotency_ttl_seconds),
        )


PROJECTS: Slot[ProjectsRuntime] = Slot("projects")


def _mark_dirty(
    session: AsyncSession,
    runtime: ProjectsRuntime,
    *,
    project_id: uuid.UUID,
    owner_id: uuid.UUID,
) -> None:
    """Once the transaction commits, retire the cache entries of what it changed (one
    renewal per transaction, however many projects it wrote)."""
    dirty: set[str] = session.info.setdefault(_DIRTY, set())
    dirty.update({f"project:{project_id}", f"owner:{owner_id}", "owner:*"})

    async def renew() -> None:
        await runtime.cache.renew(session.info.pop(_DIRTY, set()))

    after_commit(session, renew, key=_DIRTY)


# --- listing --------------------------------------------------------------------------------


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


_SORT_FIELDS = {"createdAt": "created_at", "updatedAt": "updated_at", "name": "name"}


def _fingerprint(sort: str, filters: ListFilters) -> str:
    parts = [
        sort,
        str(filters.owner_id or "*"),
        filters.status or "",
        filters.search_pattern or "",
        filters.created_after.isoformat() if filters.created_after else "",
        filters.created_before.isoformat() if filters.created_before else "",
    ]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:24]


def _page_body(
    rows: Sequence[Mapping[Any, Any]],
    *,
    page: int | None,
    limit: int,
    total: int | None,
    next_cursor: str | None,
) -> bytes:
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


def _list_filters(actor: Actor, query: ListQuery) -> ListFilters | None:
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


async def list_visible_projects(
    session: AsyncSession, actor: Actor, query: ListQuery, *, runtime: ProjectsRuntime
) -> bytes:
    """A page of the projects the actor may see, as the response document (JSON bytes)."""
    if query.cursor is not None and query.page is not None:
        raise ValidationFailed(
            details=[ErrorDetail(field="cursor", message="Use either page or cursor, not both")]
        )
    filters = _list_filters(actor, query)
    if filters is None:
        return _page_body([], page=query.page or 1, limit=query.limit, total=0, next_cursor=None)
    fingerprint = _fingerprint(query.sort, filters)
    keyset = (
        runtime.cursors.decode(query.cursor, fingerprint=fingerprint, sort=query.sort)
        if query.cursor is not None
        else None
    )
    page = query.page or 1

    async def render() -> bytes:
        return await _render_page(
            session,
            actor,
            query,
            filters=filters,
            keyset=keyset,
            page=page,
            fingerprint=fingerprint,
            runtime=runtime,
        )

    if keyset is not None or page != 1:
        return await render()
    # First pages are the hot read; deeper ones are rare enough to go to the database. Every
    # caller sharing a key sees the same rows (one owner's, or all for admins), so concurrent
    # misses may share one query.
    scope = f"owner:{filters.owner_id or '*'}"
    token = await runtime.cache.token(scope)
    key = f"projects:list:{scope}:{token}:{fingerprint}:{query.limit}"
    return await runtime.cache.get_or_set(key, render)


async def _render_page(
    session: AsyncSession,
    actor: Actor,
    query: ListQuery,
    *,
    filters: ListFilters,
    keyset: Keyset | None,
    page: int,
    fingerprint: str,
    runtime: ProjectsRuntime,
) -> bytes:
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
        next_cursor = runtime.cursors.encode(
            fingerprint=fingerprint,
            value=last[_SORT_FIELDS[query.sort.lstrip("-")]],
            row_id=last["id"],
        )

    total: int | None
    if keyset is not None:
        total = None  # cursor pages are never counted: that is what keeps them O(limit)
    elif shown and not has_more:
        total = offset + len(shown)  # the last page tells the total without counting
    else:
        total = await repository.count_projects(session, filters)
    return _page_body(
        shown,
        page=None if keyset is not None else page,
        limit=query.limit,
        total=total,
        next_cursor=next_cursor,
    )


# --- one project ----------------------------------------------------------------------------


async def get_project(
    session: AsyncSession, actor: Actor, raw_id: str, *, runtime: ProjectsRuntime
) -> CachedProject:
    """A live project the actor may see; another user's project is NotFound, like a missing one."""
    project_id = parse_project_id(raw_id)
    token = await runtime.cache.token(f"project:{project_id}")
    key = f"projects:one:{project_id}:{token}"
    raw = await runtime.cache.get(key)
    if raw is not None:
        cached = CachedProject.decode(raw)
        if not actor.is_admin and cached.owner_id != actor.user_id:
            raise NotFound("Project not found")
        return cached
    await set_rls_actor(session, user_id=actor.user_id, role=actor.role)
    row = await repository.get_live_project(
        session, project_id, owner_id=None if actor.is_admin else actor.user_id
    )
    if row is None:
        raise NotFound("Project not found")
    mapping = row
    found = CachedProject(
        version=mapping["version"],
        owner_id=mapping["user_id"],
        body=orjson.dumps(project_json(mapping)),
    )
    await runtime.cache.put(key, found.encode())
    return found


# --- writes ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IdempotencyRequest:
    key: str


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    """What a write answers: the status, the project document and its headers."""

    status_code: int
    body: bytes
    etag: str
    location: str | None = None
    replayed: bool = False


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
) -> None:
    # Any: JSON-ready audit details.
    await audit.record(
        session,
        action=event_type,
        context=context,
        actor_id=actor.user_id,
        target_type="project",
        target_id=project_id,
        details=details,
    )
    # Events also carry the version (GraphQL's Project.version; clients can compare ETags).
    await realtime.record_project_event(
        session,
        event_type=event_type,
        project_id=project_id,
        owner_id=owner_id,
        payload={**payload, "version": version},
    )
    _mark_dirty(session, runtime, project_id=project_id, owner_id=owner_id)


def _request_hash(data: ProjectCreate) -> str:
    canonical = orjson.dumps(
        data.model_dump(mode="json", exclude_unset=True), option=orjson.OPT_SORT_KEYS
    )
    return hashlib.sha256(canonical).hexdigest()


async def _replay_or_claim(
    session: AsyncSession,
    actor: Actor,
    *,
    key: str,
    request_hash: str,
    now: datetime,
    ttl: timedelta,
) -> WriteOutcome | None:
    """None when this request now owns the key; otherwise the stored outcome to replay."""
    for _attempt in range(2):
        if await repository.claim_idempotency_key(
            session,
            user_id=actor.user_id,
            key=key,
            request_hash=request_hash,
            now=now,
            expires_at=now + ttl,
        ):
            return None
        stored = await repository.get_idempotency_key(session, user_id=actor.user_id, key=key)
        if stored is None or stored["expires_at"] <= now:
            # Expired (or purged meanwhile): release it and claim it afresh.
            await repository.release_expired_idempotency_key(
                session, user_id=actor.user_id, key=key, now=now
            )
            continue
        if stored["request_hash"] != request_hash:
            raise UnprocessableEntity(
                "This Idempotency-Key was already used with a different request body",
                code="IDEMPOTENCY_KEY_REUSED",
            )
        if stored["status_code"] is None or stored["response_body"] is None:  # pragma: no cover
            # Unreachable while claims and responses commit together; kept as a safe answer.
            raise Conflict("A request with this Idempotency-Key is still in progress")
        return WriteOutcome(
            status_code=stored["status_code"],
            body=stored["response_body"],
            etag=stored["etag"] or "",
            location=stored["location"],
            replayed=True,
        )
    raise Conflict("This Idempotency-Key is being reused concurrently; retry")  # pragma: no cover


async def create_project(
    session: AsyncSession,
    actor: Actor,
    data: ProjectCreate,
    *,
    context: RequestContext,
    runtime: ProjectsRuntime,
    idempotency: IdempotencyRequest | None = None,
) -> WriteOutcome:
    """Create a project owned by the actor; with an Idempotency-Key, at most once per key."""
    await set_rls_actor(session, user_id=actor.user_id, role=actor.role)
    now = utcnow()
    if idempotency is not None:
        replay = await _replay_or_claim(
            session,
            actor,
            key=idempotency.key,
            request_hash=_request_hash(data),
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
    await repository.insert_project(session, values)
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
    )
    outcome = WriteOutcome(
        status_code=201,
        body=orjson.dumps(payload),
        etag=etag_for(1),
        location=f"{PROJECTS_PATH}/{values['id']}",
    )
    if idempotency is not None:
        await repository.store_idempotent_response(
            session,
            user_id=actor.user_id,
            key=idempotency.key,
            status_code=outcome.status_code,
            body=outcome.body,
            location=outcome.location,
            etag=outcome.etag,
        )
    await session.flush()
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
    await session.flush()
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
    await session.flush()


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


# --- maintenance ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PurgeCounts:
    projects: int
    idempotency_keys: int


async def purge_expired(
    session: AsyncSession, *, now: datetime, retention: timedelta, batch: int = 1000
) -> PurgeCounts:
    """Remove one batch of projects deleted longer ago than the retention, and expired keys."""
    await set_rls_actor(session, user_id=SYSTEM_ACTOR_ID, role="system")
    counts = PurgeCounts(
        projects=await repository.purge_deleted(
            session, deleted_before=now - retention, batch=batch
        ),
        idempotency_keys=await repository.purge_idempotency_keys(session, now=now),
    )
    if counts.projects or counts.idempotency_keys:
        await audit.record(
            session,
            action="project.purged",
            context=RequestContext(),
            target_type="project",
            details={"projects": counts.projects, "idempotencyKeys": counts.idempotency_keys},
        )
    await session.flush()
    return counts


async def purge_all_expired(settings: Settings, *, batch: int = 1000) -> PurgeCounts:
    """Purge in short transactions (one batch each) until nothing is left; for the CLI."""
    database = Database.from_settings(settings)
    retention = timedelta(days=settings.soft_delete_retention_days)
    projects = keys = 0
    try:
        while True:
            async with database.transaction() as session:
                counts = await purge_expired(
                    session, now=utcnow(), retention=retention, batch=batch
                )
            projects += counts.projects
            keys += counts.idempotency_keys
            if counts.projects < batch:
                return PurgeCounts(projects=projects, idempotency_keys=keys)
    finally:
        await database.dispose()


# --- rows for other front doors (GraphQL) ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProjectRows:
    """A page of projects for front doors that shape their own documents (GraphQL): each item
    is the project as the API shows it plus `version` and `cursor` (the keyset cursor REST
    would issue after that row); `has_more` says whether rows follow the last one."""

    # Any: JSON-ready project documents.
    items: list[dict[str, Any]]
    has_more: bool
    total: int | None


def _rows_page(
    rows: Sequence[Mapping[Any, Any]],
    *,
    limit: int,
    sort: str,
    fingerprint: str,
    total: int | None,
    runtime: ProjectsRuntime,
) -> ProjectRows:
    # Any: row mappings of repository.COLUMNS.
    column = _SORT_FIELDS[sort.lstrip("-")]
    items = [
        {
            **project_json(row),
            "version": row["version"],
            "cursor": runtime.cursors.encode(
                fingerprint=fingerprint, value=row[column], row_id=row["id"]
            ),
        }
        for row in rows[:limit]
    ]
    return ProjectRows(items=items, has_more=len(rows) > limit, total=total)


async def list_visible_project_rows(
    session: AsyncSession, actor: Actor, query: ListQuery, *, runtime: ProjectsRuntime
) -> ProjectRows:
    """Like list_visible_projects (same rules, cursors and cache invalidation), as rows."""
    filters = _list_filters(actor, query)
    if filters is None:
        return ProjectRows(items=[], has_more=False, total=0)
    fingerprint = _fingerprint(query.sort, filters)
    keyset = (
        runtime.cursors.decode(query.cursor, fingerprint=fingerprint, sort=query.sort)
        if query.cursor is not None
        else None
    )

    async def render() -> bytes:
        await set_rls_actor(session, user_id=actor.user_id, role=actor.role)
        rows = await repository.list_projects(
            session, filters, sort=query.sort, limit=query.limit + 1, after=keyset
        )
        total: int | None = None
        if keyset is None:
            has_more = len(rows) > query.limit
            total = await repository.count_projects(session, filters) if has_more else len(rows)
        page = _rows_page(
            rows,
            limit=query.limit,
            sort=query.sort,
            fingerprint=fingerprint,
            total=total,
            runtime=runtime,
        )
        return orjson.dumps([page.items, page.has_more, page.total])

    if keyset is None:
        scope = f"owner:{filters.owner_id or '*'}"
        token = await runtime.cache.token(scope)
        key = f"projects:rows:{scope}:{token}:{fingerprint}:{query.limit}"
        raw = await runtime.cache.get_or_set(key, render)
    else:
        raw = await render()
    items, has_more, total = orjson.loads(raw)
    return ProjectRows(items=items, has_more=has_more, total=total)


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
        pages[owner] = _rows_page(
            by_owner.get(owner, []),
            limit=limit,
            sort="-createdAt",
            fingerprint=_fingerprint("-createdAt", ListFilters(owner_id=owner)),
            total=totals.get(owner, 0),
            runtime=runtime,
        )
    return pages
