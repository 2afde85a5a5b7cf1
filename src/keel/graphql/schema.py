"""Query, Mutation and Subscription of SPEC §8, and the schema with its protections."""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Any

import orjson
import strawberry
from graphql import GraphQLError
from pydantic import BaseModel, ValidationError
from strawberry.extensions import (
    DisableIntrospection,
    MaxTokensLimiter,
    ParserCache,
    SchemaExtension,
)
from strawberry.types import ExecutionContext

from keel.graphql import subscriptions
from keel.graphql.errors import ShapeErrors
from keel.graphql.execution import FastLeafExecutionContext
from keel.graphql.limits import ComplexityLimiter, Limits, TextKeyedCache, ValidationByText
from keel.graphql.trusted import TrustedDocuments, load_trusted_documents
from keel.graphql.types import (
    CreateProjectInput,
    KeelInfo,
    PageInfo,
    Project,
    ProjectConnection,
    ProjectEvent,
    ProjectSort,
    ProjectStatus,
    UpdateProjectInput,
    User,
    UserConnection,
    UserEdge,
    check_page,
)
from keel.identity import admin
from keel.platform.errors import ErrorDetail, NotFound, ValidationFailed
from keel.platform.errors import validation_details as rest_validation_details
from keel.projects import service as projects
from keel.projects.documents import WriteOutcome
from keel.projects.listing import ListQuery
from keel.projects.schemas import ProjectCreate, ProjectPatch
from keel.projects.service import PROJECTS
from keel.settings import Env, Settings

MAX_DEPTH = 10
MAX_ALIASES = 15
MAX_TOKENS = 2000
MAX_SEARCH = 200


def _validated(model: type[BaseModel], data: dict[str, Any]) -> Any:
    # Any: the pydantic model instance (ProjectCreate or ProjectPatch).
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(details=rest_validation_details(exc.errors())) from exc


def _written(outcome: WriteOutcome) -> Project:
    return Project.from_document({**orjson.loads(outcome.body), "version": outcome.etag.strip('"')})


def _if_match(value: str | None) -> str | None:
    """`ifMatch` takes the ETag as REST sends it ("3", quoted) or the bare version."""
    if value is not None and value.isascii() and value.isdigit():
        return f'"{value}"'
    return value


def _users_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"users:{offset}".encode()).decode()


def _users_offset(after: str | None, first: int) -> int:
    if after is None:
        return 0
    invalid = ValidationFailed(details=[ErrorDetail(field="after", message="Invalid cursor")])
    try:
        prefix, _, number = base64.urlsafe_b64decode(after.encode()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise invalid from exc
    if prefix != "users" or not number.isdigit() or len(number) > 9:
        raise invalid
    offset = int(number)
    if offset % first:
        raise ValidationFailed(
            details=[ErrorDetail(field="after", message="Cursor was issued for another `first`")]
        )
    return offset


@strawberry.type
class Query:
    @strawberry.field
    async def viewer(self, info: KeelInfo) -> User:
        actor = await info.context.actor()
        row = await info.context.users.load(actor.user_id)
        if row is None:
            raise NotFound("User not found")
        return User.from_row(row)

    @strawberry.field
    async def project(self, info: KeelInfo, id: strawberry.ID) -> Project | None:
        context = info.context
        actor = await context.actor()
        runtime = context.services.get(PROJECTS)
        try:
            found = await context.call(
                lambda session: projects.get_project(session, actor, str(id), runtime=runtime)
            )
        except NotFound:
            return None
        return Project.from_document({**orjson.loads(found.body), "version": found.version})

    @strawberry.field
    async def projects(
        self,
        info: KeelInfo,
        first: int | None = 20,
        after: str | None = None,
        status: ProjectStatus | None = None,
        q: str | None = None,
        sort: ProjectSort | None = ProjectSort.CREATED_AT_DESC,
    ) -> ProjectConnection:
        limit = check_page(first, after)
        if q is not None and (len(q) > MAX_SEARCH or "\x00" in q):
            raise ValidationFailed(
                details=[ErrorDetail(field="q", message=f"At most {MAX_SEARCH} characters")]
            )
        context = info.context
        actor = await context.actor()
        runtime = context.services.get(PROJECTS)
        query = ListQuery(
            limit=limit,
            cursor=after,
            status=status.value if status else None,
            q=q,
            sort=(sort or ProjectSort.CREATED_AT_DESC).value,
        )
        page = await context.call(
            lambda session: projects.list_visible_project_rows(
                session, actor, query, runtime=runtime
            )
        )
        return ProjectConnection.from_rows(page)

    @strawberry.field
    async def users(
        self, info: KeelInfo, first: int | None = 20, after: str | None = None
    ) -> UserConnection:
        first = check_page(first, after)
        offset = _users_offset(after, first)
        context = info.context
        actor = await context.actor()
        rows, total = await context.call(
            lambda session: admin.list_users(session, actor, page=offset // first + 1, limit=first)
        )
        edges = [
            UserEdge(cursor=_users_cursor(offset + i + 1), node=User.from_row(row))
            for i, row in enumerate(rows)
        ]
        end = offset + len(rows)
        return UserConnection(
            edges=edges,
            page_info=PageInfo(
                has_next_page=end < total,
                # The next page starts after the last edge; it must be a multiple of `first`.
                end_cursor=_users_cursor(end) if edges else None,
            ),
            total_count=total,
        )


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def create_project(self, info: KeelInfo, input: CreateProjectInput) -> Project:
        data = _validated(
            ProjectCreate,
            {"name": input.name, "description": input.description, "status": input.status.value},
        )
        context = info.context
        actor = await context.actor()
        runtime = context.services.get(PROJECTS)
        context.wrote = True
        outcome = await context.call(
            lambda session: projects.create_project(
                session, actor, data, context=context.request_context, runtime=runtime
            )
        )
        return _written(outcome)

    @strawberry.mutation
    async def update_project(
        self,
        info: KeelInfo,
        id: strawberry.ID,
        input: UpdateProjectInput,
        if_match: str | None = None,
    ) -> Project:
        given: dict[str, Any] = {}
        for field in ("name", "description", "status"):
            value = getattr(input, field)
            if value is not strawberry.UNSET:
                given[field] = value.value if isinstance(value, ProjectStatus) else value
        data = _validated(ProjectPatch, given)
        context = info.context
        actor = await context.actor()
        runtime = context.services.get(PROJECTS)
        context.wrote = True
        outcome = await context.call(
            lambda session: projects.update_project(
                session,
                actor,
                str(id),
                data,
                if_match=_if_match(if_match),
                context=context.request_context,
                runtime=runtime,
            )
        )
        return _written(outcome)

    @strawberry.mutation
    async def delete_project(
        self, info: KeelInfo, id: strawberry.ID, if_match: str | None = None
    ) -> bool:
        context = info.context
        actor = await context.actor()
        runtime = context.services.get(PROJECTS)
        context.wrote = True
        await context.call(
            lambda session: projects.delete_project(
                session,
                actor,
                str(id),
                if_match=_if_match(if_match),
                context=context.request_context,
                runtime=runtime,
            )
        )
        return True


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def project_events(
        self, info: KeelInfo, last_event_id: strawberry.ID | None = None
    ) -> AsyncGenerator[ProjectEvent, None]:
        async for document in subscriptions.project_events(
            info.context, last_event_id=None if last_event_id is None else str(last_event_id)
        ):
            yield ProjectEvent.from_document(document)


class KeelSchema(strawberry.Schema):
    # hash -> document: the only documents that run (production, when configured), else None.
    trusted_documents: Mapping[str, str] | None = None

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # Service errors are answers, not faults; shape_error logs the unexpected ones.
        return None


def introspection_allowed(settings: Settings) -> bool:
    if settings.graphql_introspection is not None:
        return settings.graphql_introspection
    return settings.env is not Env.production


def build_schema(settings: Settings) -> KeelSchema:
    limits = Limits(
        max_depth=MAX_DEPTH, max_aliases=MAX_ALIASES, max_cost=settings.graphql_max_cost
    )
    trusted = load_trusted_documents(settings)
    # This schema's caches, by document text (see TextKeyedCache).
    validated: TextKeyedCache[list[GraphQLError]] = TextKeyedCache(maxsize=256)
    measured: TextKeyedCache[tuple[str, ...]] = TextKeyedCache(maxsize=512)
    # Order matters: validation sets the document's errors, the limiter adds its own.
    extensions: list[Callable[[], SchemaExtension] | type[SchemaExtension]] = [
        ShapeErrors,
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        lambda: ParserCache(maxsize=256),
        lambda: ValidationByText(cache=validated),
        lambda: ComplexityLimiter(limits=limits, cache=measured),
    ]
    if not introspection_allowed(settings):
        extensions.append(DisableIntrospection)
    if trusted is not None:
        # Last: its errors replace those of the validation hooks before it.
        extensions.append(lambda: TrustedDocuments(documents=trusted))
    schema = KeelSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        execution_context_class=FastLeafExecutionContext,
    )
    schema.trusted_documents = trusted
    return schema
