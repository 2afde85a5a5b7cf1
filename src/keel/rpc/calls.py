"""The call in progress as the interceptors and servicers share it (one context variable)."""

from __future__ import annotations

import uuid
from contextvars import ContextVar
from dataclasses import dataclass

from keel.platform.actor import Actor, RequestContext, VerifiedToken
from keel.platform.errors import Unauthorized


@dataclass(slots=True)
class Call:
    """Who calls which method from where; filled in by the interceptors, outermost first."""

    method: str
    request_id: str
    ip: str | None = None
    user_agent: str | None = None
    token: str | None = None
    verified: VerifiedToken | None = None
    actor: Actor | None = None

    @property
    def service(self) -> str:
        return self.method.rsplit("/", 2)[-2] if self.method.count("/") >= 2 else "unknown"

    @property
    def name(self) -> str:
        return self.method.rsplit("/", 1)[-1] or "unknown"

    @property
    def context(self) -> RequestContext:
        return RequestContext(ip=self.ip, request_id=self.request_id, user_agent=self.user_agent)


_CURRENT: ContextVar[Call | None] = ContextVar("keel_rpc_call", default=None)


def begin(call: Call) -> None:
    _CURRENT.set(call)


def current() -> Call:
    call = _CURRENT.get()
    if call is None:  # pragma: no cover - the interceptors always set it first
        raise RuntimeError("no gRPC call in progress")
    return call


def current_actor() -> Actor:
    actor = current().actor
    if actor is None:  # pragma: no cover - the authentication interceptor guards these methods
        raise Unauthorized("Missing bearer token")
    return actor


def new_request_id() -> str:
    return uuid.uuid4().hex


def peer_ip(peer: str) -> str | None:
    """The address in a gRPC peer string: `ipv4:1.2.3.4:5`, `ipv6:[::1]:5`, `unix:/path`."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rsplit(":", 1)[0] or None
    if kind == "ipv6":
        return rest.rsplit(":", 1)[0].strip("[]") or None
    return None
