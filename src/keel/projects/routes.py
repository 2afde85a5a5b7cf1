"""HTTP adapter of the projects service: /api/v1/projects."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Response, status

from keel.platform.deps import ContextDep, CurrentActor, ReadSessionDep, SessionDep, part
from keel.platform.errors import (
    Forbidden,
    NotFound,
    PreconditionFailed,
    Unauthorized,
    UnprocessableEntity,
    error_responses,
)
from keel.projects import service
from keel.projects.cache import CachedProject
from keel.projects.conditions import etag_for, if_none_match_hits
from keel.projects.documents import WriteOutcome
from keel.projects.idempotency import IdempotencyRequest
from keel.projects.listing import ListQuery
from keel.projects.schemas import (
    ProjectCreate,
    ProjectOut,
    ProjectPage,
    ProjectPatch,
    ProjectReplace,
    SortKey,
    Status,
)
from keel.projects.service import PROJECTS, ProjectsRuntime

router = APIRouter(prefix="/api/v1/projects", tags=["projects"])

JSON = "application/json"
IF_NONE_MATCH_MAX = 1024  # characters; longer is a 400 (keel.projects.shortcut leaves it here)
MAX_PAGE = 1_000_000  # deeper than this, use the cursor (and offsets stay far from overflow)


RuntimeDep = Annotated[ProjectsRuntime, Depends(part(PROJECTS))]


IfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        description='ETag of the version you are changing (e.g. `"3"`); stale → 412',
        max_length=1024,
    ),
]

_ETAG_HEADER = {"ETag": {"description": "Version of the project", "schema": {"type": "string"}}}


def _doc(status_code: int, description: str, headers: dict[str, Any]) -> dict[int | str, Any]:
    # Any: OpenAPI response objects.
    return {status_code: {"description": description, "headers": headers}}


def write_response(outcome: WriteOutcome) -> Response:
    """A write's answer: the project with its ETag (and Location, Idempotent-Replayed)."""
    headers = {"ETag": outcome.etag}
    if outcome.location:
        headers["Location"] = outcome.location
    if outcome.replayed:
        headers["Idempotent-Replayed"] = "true"
    return Response(
        content=outcome.body, status_code=outcome.status_code, media_type=JSON, headers=headers
    )


@router.get(
    "",
    response_model=ProjectPage,
    summary="List the projects you can see",
    description=(
        "Your projects (an admin: everyone's, or one user's with `userId`), newest first by "
        "default, ties broken by id. Offset pages with `page`, or keyset pages with the "
        "`nextCursor` of the previous response as `cursor` (cursor pages are not counted: "
        "`page`, `total` and `totalPages` are null). `q` finds a case-insensitive substring "
        "of name or description; `createdAfter` is inclusive, `createdBefore` exclusive."
    ),
    responses=error_responses(Unauthorized),
)
async def list_projects(
    actor: CurrentActor,
    session: ReadSessionDep,
    runtime: RuntimeDep,
    page: Annotated[int | None, Query(ge=1, le=MAX_PAGE, description="Default 1")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    status_filter: Annotated[Status | None, Query(alias="status")] = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    created_after: Annotated[datetime | None, Query(alias="createdAfter")] = None,
    created_before: Annotated[datetime | None, Query(alias="createdBefore")] = None,
    sort: Annotated[SortKey, Query()] = "-createdAt",
    user_id: Annotated[
        uuid.UUID | None, Query(alias="userId", description="Admins: one owner's projects")
    ] = None,
) -> Response:
    body = await service.list_visible_projects(
        session,
        actor,
        ListQuery(
            page=page,
            limit=limit,
            cursor=cursor,
            status=status_filter,
            q=q,
            created_after=created_after,
            created_before=created_before,
            sort=sort,
            user_id=user_id,
        ),
        runtime=runtime,
    )
    return Response(content=body, media_type=JSON)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ProjectOut,
    summary="Create a project",
    description=(
        "With an `Idempotency-Key` (yours alone, kept 24 h), repeating the request returns "
        "the first response again with `Idempotent-Replayed: true` and creates nothing; the "
        "same key with another body is a 422."
    ),
    responses={
        **_doc(
            201,
            "Created",
            {
                **_ETAG_HEADER,
                "Location": {"description": "URL of the project", "schema": {"type": "string"}},
                "Idempotent-Replayed": {
                    "description": "`true` when this is a stored response replayed",
                    "schema": {"type": "string"},
                },
            },
        ),
        # 403 EMAIL_NOT_VERIFIED: KEEL_REQUIRE_VERIFIED_EMAIL and an unverified address.
        **error_responses(Unauthorized, Forbidden, UnprocessableEntity),
    },
)
async def create_project(
    body: ProjectCreate,
    actor: CurrentActor,
    session: SessionDep,
    runtime: RuntimeDep,
    context: ContextDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=255,
            pattern=r"^[\x21-\x7e]+$",
            description="Client-chosen key (printable ASCII) making the create safe to retry",
        ),
    ] = None,
) -> Response:
    # Plain creates (no Idempotency-Key) are usually answered before this route
    # (keel.projects.shortcut).
    outcome = await service.create_project(
        session,
        actor,
        body,
        context=context,
        runtime=runtime,
        idempotency=IdempotencyRequest(idempotency_key) if idempotency_key else None,
        alone=True,  # this request's transaction holds nothing else
    )
    return write_response(outcome)


@router.get(
    "/{id}",
    response_model=ProjectOut,
    summary="One project",
    description="`If-None-Match` with the current ETag gives 304 Not Modified.",
    responses={
        **_doc(200, "The project", _ETAG_HEADER),
        **_doc(304, "Not modified", _ETAG_HEADER),
        **error_responses(Unauthorized, NotFound),
    },
)
async def get_project(
    id: str,
    actor: CurrentActor,
    session: ReadSessionDep,
    runtime: RuntimeDep,
    if_none_match: Annotated[
        str | None, Header(alias="If-None-Match", max_length=IF_NONE_MATCH_MAX)
    ] = None,
) -> Response:
    # Cached projects are usually answered before this route (keel.projects.shortcut).
    project = await service.get_project(session, actor, id, runtime=runtime)
    return read_response(project, if_none_match)


def read_response(project: CachedProject, if_none_match: str | None) -> Response:
    """GET /{id}'s answer: the project with its ETag, or 304 when the client has that one."""
    etag = etag_for(project.version)
    if if_none_match_hits(if_none_match, project.version):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers={"ETag": etag})
    return Response(content=project.body, media_type=JSON, headers={"ETag": etag})


_WRITE_ERRORS = error_responses(Unauthorized, Forbidden, NotFound, PreconditionFailed)


@router.put(
    "/{id}",
    response_model=ProjectOut,
    summary="Replace a project",
    description="Every field; omitted optional ones take their defaults.",
    responses={**_doc(200, "The project", _ETAG_HEADER), **_WRITE_ERRORS},
)
async def replace_project(
    id: str,
    body: ProjectReplace,
    actor: CurrentActor,
    session: SessionDep,
    context: ContextDep,
    runtime: RuntimeDep,
    if_match: IfMatch = None,
) -> Response:
    outcome = await service.update_project(
        session, actor, id, body, if_match=if_match, context=context, runtime=runtime
    )
    return write_response(outcome)


@router.patch(
    "/{id}",
    response_model=ProjectOut,
    summary="Change some fields of a project",
    responses={**_doc(200, "The project", _ETAG_HEADER), **_WRITE_ERRORS},
)
async def patch_project(
    id: str,
    body: ProjectPatch,
    actor: CurrentActor,
    session: SessionDep,
    context: ContextDep,
    runtime: RuntimeDep,
    if_match: IfMatch = None,
) -> Response:
    outcome = await service.update_project(
        session, actor, id, body, if_match=if_match, context=context, runtime=runtime
    )
    return write_response(outcome)


@router.delete(
    "/{id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Delete a project",
    description="The project disappears at once; its row is purged after the retention period.",
    responses=_WRITE_ERRORS,
)
async def delete_project(
    id: str,
    actor: CurrentActor,
    session: SessionDep,
    context: ContextDep,
    runtime: RuntimeDep,
    if_match: IfMatch = None,
) -> Response:
    await service.delete_project(
        session, actor, id, if_match=if_match, context=context, runtime=runtime
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
