"""HTTP and WebSocket adapter of GraphQL: POST /graphql, GraphiQL on GET, and
graphql-transport-ws on WebSocket /graphql."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.routing import APIWebSocketRoute
from starlette.requests import HTTPConnection
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Route
from starlette.websockets import WebSocket, WebSocketState
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.exceptions import ConnectionRejectionError, MissingQueryError
from strawberry.fastapi import GraphQLRouter
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.execution import ExecutionResult
from strawberry.types.graphql import OperationType
from strawberry.types.unset import UNSET

from keel.graphql.context import GraphQLContext
from keel.graphql.errors import shape_error
from keel.graphql.schema import KeelSchema, build_schema, introspection_allowed
from keel.graphql.trusted import NOT_TRUSTED, NOT_TRUSTED_MESSAGE
from keel.platform import metrics
from keel.platform.actor import RequestContext, VerifiedToken
from keel.platform.errors import AppError, Unauthorized
from keel.platform.security import sha256_hex
from keel.platform.services import Services, services_of
from keel.realtime.hub import CloseCode

PATH = "/graphql"
STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_FILES = frozenset(p.name for p in STATIC_DIR.iterdir() if p.suffix in {".js", ".css"})
GRAPHQL_RESPONSE = "application/graphql-response+json"
APQ_TTL_SECONDS = 7 * 24 * 3600
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class BadGraphQLRequest(Exception):
    def __init__(self, message: str, *, code: str = "BAD_REQUEST", status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


class _RolledBack(Exception):
    """A mutation operation with an error: nothing it did is committed."""

    def __init__(self, result: ExecutionResult) -> None:
        super().__init__("rolled back")
        self.result = result


def _request_context(connection: HTTPConnection) -> RequestContext:
    client = connection.client
    return RequestContext(
        ip=getattr(connection.state, "client_ip", None) or (client.host if client else None),
        request_id=getattr(connection.state, "request_id", None),
        user_agent=connection.headers.get("user-agent"),
    )


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _media_type(request: Request) -> str:
    return (
        GRAPHQL_RESPONSE
        if GRAPHQL_RESPONSE in request.headers.get("accept", "")
        else ("application/json")
    )


def _errors_response(request: Request, *, status: int, message: str, code: str) -> Response:
    body = {"errors": [{"message": message, "extensions": {"code": code}}]}
    return Response(orjson.dumps(body), status_code=status, media_type=_media_type(request))


def _field(data: dict[str, Any], name: str, kind: type) -> Any:
    # Any: a value of the JSON request body, checked to be of `kind` (or absent).
    value = data.get(name)
    if value is not None and not isinstance(value, kind):
        raise BadGraphQLRequest(f"`{name}` must be a {kind.__name__} or null")
    return value


async def _resolve_query(
    services: Services, data: dict[str, Any], trusted: Mapping[str, str] | None
) -> str:
    """The document to run: `query`, or the one stored for its hash (persisted queries), or
    with an allow-list in force the listed one for its hash (the schema refuses the rest)."""
    query: str | None = _field(data, "query", str)
    extensions: dict[str, Any] = _field(data, "extensions", dict) or {}
    persisted = extensions.get("persistedQuery")
    if persisted is None:
        if query is None:
            raise BadGraphQLRequest("No GraphQL query found in the request")
        return query
    digest = persisted.get("sha256Hash") if isinstance(persisted, dict) else None
    if not isinstance(digest, str) or not _SHA256.match(digest):
        raise BadGraphQLRequest("persistedQuery.sha256Hash must be 64 hex digits")
    if trusted is not None:
        listed = trusted.get(digest)
        if listed is None or (query is not None and query != listed):
            raise BadGraphQLRequest(NOT_TRUSTED_MESSAGE, code=NOT_TRUSTED)
        return listed
    key = f"graphql:apq:{digest}"
    if query is None:
        stored = await services.cache.get(key)
        if stored is None:
            raise BadGraphQLRequest(
                "PersistedQueryNotFound", code="PERSISTED_QUERY_NOT_FOUND", status=200
            )
        return stored.decode()
    if sha256_hex(query) != digest:
        raise BadGraphQLRequest("provided sha does not match query", code="INVALID_HASH")
    await services.cache.set(key, query.encode(), ttl=APQ_TTL_SECONDS)
    return query


def _is_request_error(result: ExecutionResult) -> bool:
    """A document that did not parse or validate (or variables that did not coerce): no
    field ran, so no error carries a path."""
    return (
        result.data is None
        and bool(result.errors)
        and all(e.path is None for e in result.errors or ())
    )


async def _execute(
    request: Request, services: Services, schema: KeelSchema, data: dict[str, Any]
) -> ExecutionResult:
    query = await _resolve_query(services, data, schema.trusted_documents)
    variables = _field(data, "variables", dict)
    operation_name = _field(data, "operationName", str)
    verified: VerifiedToken | None = getattr(request.state, "access_token", None)
    context = GraphQLContext(
        services=services,
        request_context=_request_context(request),
        token=_bearer(request),
        verified=verified,
    )
    context.request = request
    try:
        async with services.database.transaction() as session:
            context.session = session
            result = await schema.execute(
                query,
                variable_values=variables,
                context_value=context,
                operation_name=operation_name,
                allowed_operation_types={OperationType.QUERY, OperationType.MUTATION},
            )
            if context.wrote and result.errors:
                raise _RolledBack(result)
    except _RolledBack as rolled_back:
        # One operation, one transaction: a mutation that failed anywhere commits nothing.
        return ExecutionResult(data=None, errors=rolled_back.result.errors)
    except CannotGetOperationTypeError as exc:
        raise BadGraphQLRequest(exc.as_http_error_reason()) from exc
    except InvalidOperationTypeError as exc:
        raise BadGraphQLRequest(exc.as_http_error_reason("POST")) from exc
    except MissingQueryError as exc:
        raise BadGraphQLRequest("No GraphQL query found in the request") from exc
    finally:
        context.release()
    return result


async def graphql_http(request: Request, schema: KeelSchema) -> Response:
    """GraphQL over HTTP (POST, JSON)."""
    services = services_of(request.app)
    try:
        data = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        return _errors_response(
            request, status=400, message="Request body is not valid JSON", code="INVALID_JSON"
        )
    if isinstance(data, list):
        return _errors_response(
            request,
            status=400,
            message="Batched operations are not accepted; send one operation per request",
            code="BATCH_NOT_SUPPORTED",
        )
    if not isinstance(data, dict):
        return _errors_response(
            request, status=400, message="The body must be a JSON object", code="BAD_REQUEST"
        )
    try:
        result = await _execute(request, services, schema, data)
    except BadGraphQLRequest as exc:
        return _errors_response(request, status=exc.status, message=exc.message, code=exc.code)
    body: dict[str, Any] = {"data": result.data}
    if result.errors:
        body["errors"] = [shape_error(e).formatted for e in result.errors]
    return Response(
        orjson.dumps(body),
        status_code=400 if _is_request_error(result) else 200,
        media_type=_media_type(request),
    )


GRAPHIQL_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Keel GraphiQL</title>
<link rel="stylesheet" href="/graphql/static/graphiql.min.css">
<link rel="stylesheet" href="/graphql/static/graphiql-page.css"></head>
<body><div id="graphiql">Loading…</div>
<script src="/graphql/static/react.production.min.js"></script>
<script src="/graphql/static/react-dom.production.min.js"></script>
<script src="/graphql/static/graphiql.min.js"></script>
<script src="/graphql/static/graphiql-init.js"></script></body></html>"""


async def graphiql(request: Request) -> Response:
    """The offline GraphiQL page (where introspection is allowed), under a 'self'-only CSP."""
    if not introspection_allowed(services_of(request.app).settings):
        return _errors_response(
            request, status=404, message="GraphiQL is disabled here", code="NOT_FOUND"
        )
    return HTMLResponse(GRAPHIQL_PAGE)


async def graphiql_asset(request: Request, name: str) -> Response:
    if name not in STATIC_FILES or not introspection_allowed(services_of(request.app).settings):
        return _errors_response(request, status=404, message="Not found", code="NOT_FOUND")
    return FileResponse(STATIC_DIR / name, headers={"cache-control": "public, max-age=86400"})


class _ClosesOnce(ASGIWebSocketAdapter):
    """The first close wins: Keel closes with its own code before strawberry would close a
    rejected connection_init with 4403."""

    async def close(self, code: int, reason: str) -> None:
        if self.ws.application_state is WebSocketState.CONNECTED:
            await self.ws.close(code=code, reason=reason)


class _WebSocketView(GraphQLRouter[GraphQLContext, None]):
    """strawberry's graphql-transport-ws handler, with Keel's context and authentication."""

    websocket_adapter_class = _ClosesOnce

    async def run(self, request: Any, context: Any = UNSET, root_value: Any = UNSET) -> Any:
        # Any: strawberry's overloads (an HTTP request or a WebSocket, and their responses).
        if not isinstance(request, WebSocket):
            return await super().run(request, context, root_value)
        # The same gauge as /api/v1/ws: every open WebSocket of this process.
        metrics.WEBSOCKET_CONNECTIONS.inc()
        try:
            return await super().run(request, context, root_value)
        finally:
            metrics.WEBSOCKET_CONNECTIONS.dec()

    async def on_ws_connect(self, context: GraphQLContext) -> None:
        params = context.connection_params
        token = params.get("accessToken") if isinstance(params, dict) else None
        context.token = token if isinstance(token, str) and len(token) <= 8192 else None
        try:
            await context.actor()
        except AppError as exc:
            if isinstance(exc, Unauthorized) and isinstance(context.request, WebSocket):
                # A missing, invalid or expired token is 4401, as on /api/v1/ws; strawberry's
                # 4403 stays for a caller who is known but refused.
                with contextlib.suppress(RuntimeError, OSError):
                    await context.request.close(code=CloseCode.UNAUTHORIZED, reason=exc.message)
            raise ConnectionRejectionError({"code": exc.code, "message": exc.message}) from exc


async def _ws_context(websocket: WebSocket) -> GraphQLContext:
    return GraphQLContext(
        services=services_of(websocket.app), request_context=_request_context(websocket)
    )


def create_router(services: Services) -> APIRouter:
    """The /graphql routes of one app: its schema follows the app's settings."""
    schema = build_schema(services.settings)
    router = APIRouter(tags=["graphql"])

    async def post(request: Request) -> Response:
        return await graphql_http(request, schema)

    # A plain Starlette route: the hot path needs none of FastAPI's parameter handling.
    router.routes.append(Route(PATH, post, methods=["POST"], include_in_schema=False))

    router.add_api_route(PATH, graphiql, methods=["GET"], include_in_schema=False)
    router.add_api_route(
        PATH + "/static/{name}", graphiql_asset, methods=["GET"], include_in_schema=False
    )
    view = _WebSocketView(
        schema,
        path=PATH,
        graphql_ide=None,
        allow_queries_via_get=False,
        context_getter=_ws_context,
        subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
        include_in_schema=False,
    )
    router.routes.extend(r for r in view.routes if isinstance(r, APIWebSocketRoute))
    return router
