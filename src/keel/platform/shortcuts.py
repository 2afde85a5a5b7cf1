"""The hottest routes answered below FastAPI's router and dependency solver (docs/adr/0022).

On a 2-core machine FastAPI's routing, dependency solving and exception layers cost more CPU
than the work of a cached read (a GET by id: ~1170 µs per request through the route, ~520 µs
without it) and about a fifth of a create. A feature may register a `Shortcut` for such a
route: a plain async function that answers from the same service functions the route calls,
or returns None to let the route answer. It answers only the plain case; everything else
(errors in the request, a missing or dead token, a cache miss…) goes on to FastAPI, so the
route stays the one place where validation errors and documentation come from.

This layer sits inside the platform middleware: request id, security headers, access log,
metrics, overload guard, rate limit and CORS apply to what it answers exactly as to the rest.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from fastapi.routing import APIRoute
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REPEATED = "\x00repeated"  # what `headers_of` gives for a header sent more than once

# (scope, path match, request body) -> the answer, or None to let the route answer.
Handler = Callable[[Scope, re.Match[str], bytes], Awaitable[Response | None]]


@dataclass(frozen=True, slots=True)
class Shortcut:
    method: str
    path: re.Pattern[str]
    route: APIRoute  # the route it stands in for: metrics and the access log name it
    handler: Handler
    reads_body: bool = False


def route_of(routes: Sequence[object], endpoint: Callable[..., object]) -> APIRoute:
    """The APIRoute serving `endpoint` (FastAPI puts it in scope["route"] when it answers)."""
    return next(r for r in routes if isinstance(r, APIRoute) and r.endpoint is endpoint)


def headers_of(scope: Scope, *names: bytes) -> dict[bytes, str]:
    """The named headers (lower-case names), latin-1 as Starlette decodes them; a header
    sent twice maps to REPEATED, so a shortcut can leave the ambiguity to the route."""
    found: dict[bytes, str] = {}
    for name, value in scope["headers"]:
        if name in names:
            found[name] = REPEATED if name in found else value.decode("latin-1")
    return found


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, read as FastAPI's HTTPBearer
    reads it (scheme in any case, the rest stripped); None for anything else."""
    if authorization is None or authorization == REPEATED:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


async def _read_body(receive: Receive) -> tuple[bytes, list[Message]]:
    messages: list[Message] = []
    chunks: list[bytes] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks), messages


def _replaying(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay


class Shortcuts:
    """Pure ASGI: the first shortcut matching the method and path answers, if it can."""

    def __init__(self, app: ASGIApp, *, shortcuts: Sequence[Shortcut]) -> None:
        self.app = app
        self.shortcuts = tuple(shortcuts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            method, path = scope["method"], scope["path"]
            for shortcut in self.shortcuts:
                if shortcut.method != method:
                    continue
                match = shortcut.path.fullmatch(path)
                if match is None:
                    continue
                body = b""
                if shortcut.reads_body:
                    body, messages = await _read_body(receive)
                    receive = _replaying(messages, receive)  # the route reads it again
                response = await shortcut.handler(scope, match, body)
                if response is not None:
                    scope["route"] = shortcut.route
                    await response(scope, receive, send)
                    return
                break
        await self.app(scope, receive, send)
