"""GET /api/v1/projects/{id} from the cache and POST /api/v1/projects, below FastAPI's router
(keel.platform.shortcuts, docs/adr/0022).

Each answers only the plain case, with the route's own parts (authentication, the service
call, the route's response), so both paths give the same bytes:
- the read: a bearer token of a live session, and the project cached and visible to the
  caller;
- the create: a bearer token of a live session allowed to write, a JSON body the route's
  own model accepts, and no Idempotency-Key.
Anything else (no or bad token, a cache miss, another user's project, a body the model
refuses, a repeated or oversized header) goes on to the route, which answers as it always
did. Once a create has begun writing, its errors are answered here, as the route would.
"""

from __future__ import annotations

import re

import orjson
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from keel.platform.auth import AUTHENTICATOR
from keel.platform.deps import authenticate_bearer, request_context
from keel.platform.errors import AppError, app_error_response
from keel.platform.services import Services
from keel.platform.shortcuts import REPEATED, Shortcut, bearer_token, headers_of, route_of
from keel.projects import routes, service
from keel.projects.schemas import ProjectCreate
from keel.projects.service import PROJECTS


class ProjectShortcuts:
    def __init__(self, services: Services) -> None:
        self._authenticator = services.get(AUTHENTICATOR)
        self._runtime = services.get(PROJECTS)
        self._database = services.database

    def shortcuts(self) -> list[Shortcut]:
        return [
            Shortcut(
                method="GET",
                path=re.compile(r"/api/v1/projects/([^/]+)"),
                route=route_of(routes.router.routes, routes.get_project),
                handler=self.read,
            ),
            Shortcut(
                method="POST",
                path=re.compile(r"/api/v1/projects"),
                route=route_of(routes.router.routes, routes.create_project),
                handler=self.create,
                reads_body=True,
            ),
        ]

    async def read(self, scope: Scope, match: re.Match[str], _body: bytes) -> Response | None:
        headers = headers_of(scope, b"authorization", b"if-none-match")
        token = bearer_token(headers.get(b"authorization"))
        if_none_match = headers.get(b"if-none-match")
        if token is None or if_none_match == REPEATED:
            return None
        if if_none_match is not None and len(if_none_match) > routes.IF_NONE_MATCH_MAX:
            return None
        try:
            actor = await authenticate_bearer(self._authenticator, token, scope)
            project = await service.cached_project(actor, match[1], runtime=self._runtime)
        except AppError:
            return None  # 401, 404: the route says so, in its one way
        if project is None:
            return None
        return routes.read_response(project, if_none_match)

    async def create(self, scope: Scope, _match: re.Match[str], body: bytes) -> Response | None:
        headers = headers_of(scope, b"authorization", b"content-type", b"idempotency-key")
        token = bearer_token(headers.get(b"authorization"))
        content_type = headers.get(b"content-type", "").partition(";")[0].strip().lower()
        if token is None or content_type != "application/json" or b"idempotency-key" in headers:
            return None
        try:
            data = ProjectCreate.model_validate(orjson.loads(body))
        except (orjson.JSONDecodeError, ValidationError):
            return None  # the route names what is wrong
        try:
            actor = await authenticate_bearer(self._authenticator, token, scope)
            service.check_may_write(actor, self._runtime)
        except AppError:
            return None
        try:
            async with self._database.transaction() as session:
                outcome = await service.create_project(
                    session,
                    actor,
                    data,
                    context=request_context(scope),
                    runtime=self._runtime,
                    alone=True,
                )
        except AppError as exc:  # the database unavailable, say: answered as the route would
            return app_error_response(Request(scope), exc)
        return routes.write_response(outcome)
