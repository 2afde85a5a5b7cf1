"""keel.v1.ProjectService: the project services (and live events) for other services."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import orjson
from google.protobuf import empty_pb2

from keel.platform.errors import (
    AppError,
    ErrorDetail,
    Forbidden,
    NotFound,
    ServiceUnavailable,
    Unauthorized,
    ValidationFailed,
)
from keel.platform.services import Services
from keel.projects import service
from keel.projects.conditions import etag_for
from keel.projects.idempotency import IdempotencyRequest
from keel.projects.listing import ListQuery
from keel.projects.schemas import ProjectCreate, ProjectPatch, ProjectReplace
from keel.realtime.catchup import (
    MAX_PROJECT_FILTER,
    RESYNC_REASON,
    EventStreams,
    Grant,
    Resync,
)
from keel.realtime.hub import CloseCode, Subscriber
from keel.realtime.service import OutgoingEvent
from keel.rpc import calls
from keel.rpc.convert import (
    EVENT_TYPES,
    ORDER_BY,
    build,
    parent_user,
    project_message,
    resource_id,
    status_value,
    timestamp,
)
from keel.v1 import project_pb2, project_service_pb2

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
MASKABLE = ("display_name", "description", "status")
MAX_EVENT_ID = 32  # as REST's lastEventId


def _page_size(requested: int) -> int:
    """AIP-158: 0 means the default, above the maximum means the maximum, negative is wrong."""
    if requested < 0:
        raise ValidationFailed(details=[ErrorDetail(field="limit", message="Must be at least 0")])
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def _order_by(order_by: str) -> str:
    key = " ".join(order_by.lower().split())
    if key not in ORDER_BY:
        raise ValidationFailed(
            details=[ErrorDetail(field="sort", message="Must be one of: " + ", ".join(ORDER_BY))]
        )
    return ORDER_BY[key]


def _fields(
    project: project_pb2.Project, paths: tuple[str, ...], *, replace: bool = False
) -> dict[str, object]:
    """REST's body for the given proto fields of `project`; an unset description is null, and
    an unset status on a create or full replacement is the default."""
    values: dict[str, object] = {}
    for path in paths:
        if path == "display_name":
            values["name"] = project.display_name
        elif path == "description":
            values["description"] = project.description if project.HasField("description") else None
        elif project.status or not replace:
            values["status"] = status_value(project.status)
    return values


def _update_paths(request: project_service_pb2.UpdateProjectRequest) -> tuple[str, ...]:
    """AIP-134: the mask's paths, `*` for all; without a mask, the fields that are set."""
    if request.HasField("update_mask"):
        paths = tuple(request.update_mask.paths)
        if paths == ("*",):
            return MASKABLE
        unknown = [p for p in paths if p not in MASKABLE]
        if unknown or not paths:
            raise ValidationFailed(
                details=[
                    ErrorDetail(
                        field="update_mask",
                        message="Paths must be among: " + ", ".join(MASKABLE),
                    )
                ]
            )
        return paths
    project = request.project
    present = []
    if project.display_name:
        present.append("display_name")
    if project.HasField("description"):
        present.append("description")
    if project.status:
        present.append("status")
    if not present:
        raise ValidationFailed(
            details=[ErrorDetail(field="update_mask", message="Give at least one field to change")]
        )
    return tuple(present)


def _watched(names: Sequence[str]) -> list[uuid.UUID] | None:
    if len(names) > MAX_PROJECT_FILTER:
        raise ValidationFailed(
            details=[ErrorDetail(field="names", message=f"At most {MAX_PROJECT_FILTER} projects")]
        )
    try:
        return [uuid.UUID(resource_id(name, collection="projects")) for name in names] or None
    except (NotFound, ValueError) as exc:
        raise ValidationFailed(
            details=[ErrorDetail(field="names", message="Must be projects/{project_id} names")]
        ) from exc


def _watch_message(item: OutgoingEvent | Resync) -> project_service_pb2.WatchProjectsResponse:
    if isinstance(item, Resync):
        return project_service_pb2.WatchProjectsResponse(
            resync=project_service_pb2.WatchResync(reason=RESYNC_REASON)
        )
    event: Mapping[str, Any] = orjson.loads(item.json)  # Any: JSON values
    return project_service_pb2.WatchProjectsResponse(
        event=project_service_pb2.ProjectEvent(
            id=event["id"],
            type=EVENT_TYPES.get(event["type"], project_service_pb2.PROJECT_EVENT_TYPE_UNSPECIFIED),
            # Events carry no version: an empty etag ("any version" on a write).
            project=project_message(event["data"], etag=""),
            event_time=timestamp(event["timestamp"]),
        )
    )


def _stream_end(subscriber: Subscriber) -> AppError:
    """Why a live stream ended, as the status that tells the client what to do next."""
    if subscriber.close_code == CloseCode.UNAUTHORIZED:
        return Unauthorized(subscriber.close_reason, code="SESSION_ENDED")
    if subscriber.close_code == CloseCode.SLOW_CONSUMER:
        return ServiceUnavailable(
            "Too far behind; reconnect with last_event_id", code="SLOW_CONSUMER"
        )
    return ServiceUnavailable("Server shutting down; reconnect and resume", code="GOING_AWAY")


def _message(body: bytes, *, etag: str) -> project_pb2.Project:
    document: Mapping[str, Any] = orjson.loads(body)  # Any: JSON values
    return project_message(document, etag=etag)


class ProjectServicer:
    """Registered by generated code, which looks methods up by name. Each call runs in one
    transaction, committed (with its after-commit work) before the answer is sent."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.runtime = services.get(service.PROJECTS)
        self.streams = EventStreams.of(services)
        self._open_streams: set[Subscriber] = set()

    async def ListProjects(  # named as the generated code calls it
        self, request: project_service_pb2.ListProjectsRequest, context: Any
    ) -> project_service_pb2.ListProjectsResponse:
        # Any: grpc.aio.ServicerContext (grpcio ships no type hints).
        actor = calls.current_actor()
        owner = parent_user(request.parent)
        if owner is not None and owner != actor.user_id and not actor.is_admin:
            # AIP-132: a parent the caller has no access to is PERMISSION_DENIED (REST's
            # userId filter answers an empty page instead).
            raise Forbidden("You may list only your own projects")
        query = ListQuery(
            limit=_page_size(request.page_size),
            cursor=request.page_token or None,
            sort=_order_by(request.order_by),
            user_id=owner,
        )
        async with self.services.database.transaction() as session:
            body = await service.list_visible_projects(session, actor, query, runtime=self.runtime)
        page: Mapping[str, Any] = orjson.loads(body)  # Any: JSON values
        # A list document carries no versions; an etag then says "unknown" (any version).
        return project_service_pb2.ListProjectsResponse(
            projects=[project_message(doc, etag="") for doc in page["data"]],
            next_page_token=page["pagination"]["nextCursor"] or "",
            total_size=page["pagination"]["total"] or 0,
        )

    async def GetProject(  # named as the generated code calls it
        self, request: project_service_pb2.GetProjectRequest, context: Any
    ) -> project_pb2.Project:
        actor = calls.current_actor()
        raw_id = resource_id(request.name, collection="projects")
        async with self.services.database.transaction() as session:
            found = await service.get_project(session, actor, raw_id, runtime=self.runtime)
        return _message(found.body, etag=etag_for(found.version))

    async def CreateProject(  # named as the generated code calls it
        self, request: project_service_pb2.CreateProjectRequest, context: Any
    ) -> project_pb2.Project:
        actor = calls.current_actor()
        project = request.project
        data = build(ProjectCreate, _fields(project, MASKABLE, replace=True))
        idempotency = None
        if request.request_id:
            key = request.request_id
            if len(key) > 255 or not all("\x21" <= c <= "\x7e" for c in key):
                raise ValidationFailed(
                    details=[
                        ErrorDetail(field="request_id", message="1-255 printable ASCII characters")
                    ]
                )
            idempotency = IdempotencyRequest(key)
        async with self.services.database.transaction() as session:
            outcome = await service.create_project(
                session,
                actor,
                data,
                context=calls.current().context,
                runtime=self.runtime,
                idempotency=idempotency,
            )
        return _message(outcome.body, etag=outcome.etag)

    async def UpdateProject(  # named as the generated code calls it
        self, request: project_service_pb2.UpdateProjectRequest, context: Any
    ) -> project_pb2.Project:
        actor = calls.current_actor()
        raw_id = resource_id(request.project.name, collection="projects")
        paths = _update_paths(request)
        replace = paths == MASKABLE
        values = _fields(request.project, paths, replace=replace)
        data: ProjectReplace | ProjectPatch = (
            build(ProjectReplace, values) if replace else build(ProjectPatch, values)
        )
        async with self.services.database.transaction() as session:
            outcome = await service.update_project(
                session,
                actor,
                raw_id,
                data,
                if_match=request.project.etag or None,
                context=calls.current().context,
                runtime=self.runtime,
            )
        return _message(outcome.body, etag=outcome.etag)

    async def DeleteProject(  # named as the generated code calls it
        self, request: project_service_pb2.DeleteProjectRequest, context: Any
    ) -> empty_pb2.Empty:
        actor = calls.current_actor()
        raw_id = resource_id(request.name, collection="projects")
        async with self.services.database.transaction() as session:
            await service.delete_project(
                session,
                actor,
                raw_id,
                if_match=request.etag or None,
                context=calls.current().context,
                runtime=self.runtime,
            )
        return empty_pb2.Empty()

    async def WatchProjects(  # named as the generated code calls it
        self, request: project_service_pb2.WatchProjectsRequest, context: Any
    ) -> AsyncIterator[project_service_pb2.WatchProjectsResponse]:
        """The §5 events on the realtime catch-up path that WebSocket and SSE use."""
        actor = calls.current_actor()
        if actor.expires_at is None:  # pragma: no cover - every access token carries exp
            raise Unauthorized("Invalid or expired access token", code="INVALID_TOKEN")
        last_event_id = request.last_event_id or None
        if last_event_id is not None and len(last_event_id) > MAX_EVENT_ID:
            raise ValidationFailed(
                details=[ErrorDetail(field="last_event_id", message="Must be an event id")]
            )
        grant = Grant(actor=actor, expires_at=actor.expires_at)
        subscriber = self.streams.subscriber(grant, _watched(request.names))
        self._open_streams.add(subscriber)
        try:
            async for caught_up in self.streams.catch_up_and_register(
                subscriber, last_event_id=last_event_id
            ):
                yield _watch_message(caught_up)
            yield project_service_pb2.WatchProjectsResponse(ready=project_service_pb2.WatchReady())
            async for item in self.streams.live(subscriber, grant):
                if isinstance(item, OutgoingEvent):
                    yield _watch_message(item)
                # A heartbeat proved the session still live; HTTP/2 keepalive does the rest.
            raise _stream_end(subscriber)
        finally:
            self._open_streams.discard(subscriber)
            self.streams.release(subscriber, "Stream ended")

    def end_streams(self) -> None:
        """Shutdown: end every open stream with UNAVAILABLE (clients resume elsewhere)."""
        for subscriber in list(self._open_streams):
            subscriber.close(CloseCode.GOING_AWAY, "Server shutting down; reconnect and resume")
