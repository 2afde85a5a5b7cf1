"""Pure-ASGI middleware: request id, security headers, body size limit, access log."""

from __future__ import annotations

import os
import re
import time
from collections.abc import MutableMapping
from typing import Any

import structlog
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keel.platform.errors import send_error
from keel.platform.unreachable import DATABASE_OUTAGE, RETRY_AFTER_SECONDS, database_unreachable

access_log = structlog.get_logger("keel.access")

REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
API_CSP = "default-src 'none'; frame-ancestors 'none'"
# The docs page loads its own script and styles from /static; nothing from elsewhere.
# GraphiQL's stylesheet embeds its fonts as data: URIs.
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'"
)
DOCS_PATHS = ("/docs", "/static/")
# The console (GET /console): its own files, and API calls and WebSockets to this origin only.
CONSOLE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
GRAPHIQL_PATH = "/graphql"


def _csp(path: str, method: str) -> str:
    if path == "/docs" or path.startswith(DOCS_PATHS[1]):
        return DOCS_CSP
    # GraphiQL: the page (GET /graphql) and its assets; POST /graphql stays strict.
    if path.startswith(GRAPHIQL_PATH) and method == "GET":
        return DOCS_CSP
    if path == "/console" or path.startswith("/console/"):
        return CONSOLE_CSP
    return API_CSP


class BodyTooLarge(HTTPException):
    """Raised from receive() mid-body; an HTTPException so FastAPI's body parser re-raises it
    (it turns other exceptions into a 400) and the error handler renders a 413."""

    def __init__(self) -> None:
        super().__init__(status_code=413)


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of a request header (`name` in lower case), as sent."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value)
    return None


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "<unmatched>"


class PlatformMiddleware:
    """Everything every HTTP response needs, in one pass so it costs one wrapper.

    - X-Request-ID: echoed when the client's is well-formed, otherwise generated.
    - Security headers on every response; the strict CSP except on the docs page.
    - Request bodies above the limit get 413, whether announced by Content-Length or not.
    - Query strings with NUL get 400 before any handler sees them.
    - One structured access-log line per request, without query string or headers.
    """

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, hsts_max_age: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.hsts = f"max-age={hsts_max_age}; includeSubDomains".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        raw_id = header(scope, b"x-request-id")
        candidate = raw_id.decode("latin-1") if raw_id else ""
        request_id = candidate if REQUEST_ID_RE.match(candidate) else os.urandom(16).hex()
        state: MutableMapping[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id
        structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            if scope["type"] == "websocket":
                await self.app(scope, receive, send)
                return
            await self._http(scope, receive, send, request_id)
        finally:
            structlog.contextvars.unbind_contextvars("request_id", "user_id")

    async def _http(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        start = time.perf_counter()
        path: str = scope["path"]
        csp = _csp(path, scope["method"])
        status_holder = [500]
        response_started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                status_holder[0] = message["status"]
                headers = MutableHeaders(scope=message)
                headers["x-request-id"] = request_id
                headers["strict-transport-security"] = self.hsts.decode()
                headers["x-content-type-options"] = "nosniff"
                headers["x-frame-options"] = "DENY"
                headers["referrer-policy"] = "no-referrer"
                headers["content-security-policy"] = csp
                headers.setdefault("cache-control", "no-store")
            await send(message)

        async def reject(status: int, code: str, message: str) -> None:
            await send_error(
                send_wrapper,
                status=status,
                code=code,
                message=message,
                path=path,
                headers=[(b"connection", b"close")],
            )

        try:
            length = header(scope, b"content-length")
            if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
                await reject(413, "PAYLOAD_TOO_LARGE", self._too_large_message())
                return
            if b"%00" in scope.get("query_string", b"") or "\x00" in path:
                await reject(400, "BAD_REQUEST", "Request contains a NUL character")
                return

            received = 0

            async def limited_receive() -> Message:
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > self.max_body_bytes:
                        raise BodyTooLarge
                return message

            try:
                await self.app(scope, limited_receive, send_wrapper)
            except BodyTooLarge:
                if response_started:  # pragma: no cover - handlers read bodies before replying
                    raise
                await reject(413, "PAYLOAD_TOO_LARGE", self._too_large_message())
            except Exception as exc:
                # Rendered here rather than by Starlette's outermost error middleware, so the 500
                # carries the request id and the security headers like every other response.
                if response_started:
                    raise
                if database_unreachable(exc):
                    # An outage, not a bug: a 503 to retry, logged once per outage.
                    DATABASE_OUTAGE.failed(exc)
                    await send_error(
                        send_wrapper,
                        status=503,
                        code="SERVICE_UNAVAILABLE",
                        message="The database is unavailable; try again shortly",
                        path=path,
                        headers=[(b"retry-after", str(RETRY_AFTER_SECONDS).encode())],
                    )
                    return
                access_log.exception("unhandled_error", error_type=type(exc).__name__)
                await send_error(
                    send_wrapper,
                    status=500,
                    code="INTERNAL_ERROR",
                    message="Internal server error",
                    path=path,
                    request_id=request_id,
                )
        finally:
            duration_ms = round((time.perf_counter() - start) * 1000, 2)
            access_log.info(
                "request",
                method=scope["method"],
                route=_route_template(scope),
                status=status_holder[0],
                duration_ms=duration_ms,
            )

    def _too_large_message(self) -> str:
        return f"Request body exceeds the limit of {self.max_body_bytes} bytes"
