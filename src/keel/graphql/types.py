"""The GraphQL object types of SPEC §8, built from the documents the services return."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import Enum
from typing import Any

import strawberry
from strawberry.types import Info

from keel.graphql.context import GraphQLContext
from keel.identity.models import User as UserRow
from keel.platform.errors import ErrorDetail, NotFound, ValidationFailed
from keel.projects import service as projects
from keel.projects.listing import ListQuery
from keel.projects.rows import ProjectRows
from keel.projects.service import PROJECTS

MAX_FIRST = 100
MAX_CURSOR = 512
KeelInfo = Info[GraphQLContext, None]


@strawberry.enum
class ProjectStatus(Enum):
    ACTIVE = "active"
    COMPLETED = "completed"
    ARCHIVED = "archived"


@strawberry.enum
class Role(Enum):
    USER = "user"
    ADMIN = "admin"


@strawberry.enum
class ProjectSort(Enum):
    CREATED_AT_DESC = "-createdAt"
    CREATED_AT_ASC = "createdAt"
    NAME_ASC = "name"
    NAME_DESC = "-name"
    UPDATED_AT_DESC = "-updatedAt"
    UPDATED_AT_ASC = "updatedAt"


def check_page(first: int | None, after: str | None) -> int:
    """The page size (20 when not given), within the same bounds as REST's `limit`."""
    first = 20 if first is None else first
    if not 1 <= first <= MAX_FIRST:
        raise ValidationFailed(
            details=[ErrorDetail(field="first", message=f"Must be between 1 and {MAX_FIRST}")]
        )
    if after is not None and len(after) > MAX_CURSOR:
        raise ValidationFailed(details=[ErrorDetail(field="after", message="Invalid cursor")])
    return first


def _timestamp(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class User:
    id: strawberry.ID
    email: str
    name: str
    role: Role
    created_at: datetime
    user_id: strawberry.Private[uuid.UUID]

    @classmethod
    def from_row(cls, row: UserRow) -> User:
        return cls(
            id=strawberry.ID(str(row.id)),
            email=row.email,
            name=row.name,
            role=Role(row.role),
            created_at=row.created_at,
            user_id=row.id,
        )

    @strawberry.field
    async def projects(
        self, info: KeelInfo, first: int | None = 20, after: str | None = None
    ) -> ProjectConnection:
        limit = check_page(first, after)
        context = info.context
        if after is None:
            page = await context.owner_pages.load((self.user_id, limit))
        else:
            actor = await context.actor()
            runtime = context.services.get(PROJECTS)
            query = ListQuery(limit=limit, cursor=after, user_id=self.user_id)
            page = await context.call(
                lambda session: projects.list_visible_project_rows(
                    session, actor, query, runtime=runtime
                )
            )
        return ProjectConnection.from_rows(page)


@strawberry.type
class Project:
    id: strawberry.ID
    name: str
    description: str | None
    status: ProjectStatus
    version: int
    created_at: datetime
    updated_at: datetime
    owner_id: strawberry.Private[uuid.UUID]

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> Project:
        """From the project as the API shows it, plus its version."""
        # Any: a JSON-decoded project document.
        return cls(
            id=strawberry.ID(doc["id"]),
            name=doc["name"],
            description=doc["description"],
            status=ProjectStatus(doc["status"]),
            version=int(doc["version"]),
            created_at=_timestamp(doc["createdAt"]),
            updated_at=_timestamp(doc["updatedAt"]),
            owner_id=uuid.UUID(doc["userId"]),
        )

    @strawberry.field
    async def owner(self, info: KeelInfo) -> User:
        row = await info.context.users.load(self.owner_id)
        if row is None:  # the owner of a project the caller sees is visible to them
            raise NotFound("User not found")
        return User.from_row(row)


@strawberry.type
class ProjectEdge:
    cursor: str
    node: Project


@strawberry.type
class ProjectConnection:
    edges: list[ProjectEdge]
    page_info: PageInfo
    total_count: int | None = strawberry.field(
        description="Projects matching the filters; null on pages after the first (as REST)"
    )

    @classmethod
    def from_rows(cls, page: ProjectRows) -> ProjectConnection:
        # Hot lists come from the cache as the same ProjectRows object again and again (see
        # ProjectRows.decode): build their (immutable) connection once.
        key = id(page)
        recent = _RECENT_CONNECTIONS.get(key)
        if recent is not None and recent[0] is page:
            return recent[1]
        connection = cls._build(page)
        _RECENT_CONNECTIONS[key] = (page, connection)
        if len(_RECENT_CONNECTIONS) > 256:
            del _RECENT_CONNECTIONS[next(iter(_RECENT_CONNECTIONS))]
        return connection

    @classmethod
    def _build(cls, page: ProjectRows) -> ProjectConnection:
        edges = [
            ProjectEdge(cursor=item["cursor"], node=Project.from_document(item))
            for item in page.items
        ]
        return cls(
            edges=edges,
            page_info=PageInfo(
                has_next_page=page.has_more, end_cursor=edges[-1].cursor if edges else None
            ),
            total_count=page.total,
        )


# id(ProjectRows) -> (that page, its connection); the page is kept so its id stays unique.
_RECENT_CONNECTIONS: dict[int, tuple[ProjectRows, ProjectConnection]] = {}


@strawberry.type
class UserEdge:
    cursor: str
    node: User


@strawberry.type
class UserConnection:
    edges: list[UserEdge]
    page_info: PageInfo
    total_count: int


@strawberry.type
class ProjectEvent:
    id: strawberry.ID
    type: str
    project: Project
    timestamp: datetime

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> ProjectEvent:
        # Any: a JSON-decoded event as WebSocket/SSE send it.
        return cls(
            id=strawberry.ID(doc["id"]),
            type=doc["type"],
            project=Project.from_document(doc["data"]),
            timestamp=_timestamp(doc["timestamp"]),
        )


@strawberry.input
class CreateProjectInput:
    name: str
    description: str | None = None
    status: ProjectStatus = ProjectStatus.ACTIVE


@strawberry.input(description="Only the fields given change; `description: null` clears it")
class UpdateProjectInput:
    name: str | None = strawberry.UNSET
    description: str | None = strawberry.UNSET
    status: ProjectStatus | None = strawberry.UNSET
