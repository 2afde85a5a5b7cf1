"""The HTTP server's own defences (uvicorn + httptools, extended): head and body read timeouts,
a cap on head size and header count, and a lingering close so early answers reach the client.

uvicorn 0.54 with httptools has none of these but the keep-alive timeout (docs/adr/
0019-hardening-server.md): a connection that sends nothing, trickles its head or stalls its
body is held forever, a head of any size is buffered, and a 413 sent before the body was
read is usually lost to a TCP reset when the socket is closed with the body unread.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from keel.platform.errors import error_payload
from keel.platform.ratelimit import RECEIVED_AT
from keel.platform.websocket_server import FrameWritingProtocol
from keel.settings import Settings, load_settings

SECURITY_HEADERS = (
    b"x-content-type-options: nosniff\r\n"
    b"x-frame-options: DENY\r\n"
    b"referrer-policy: no-referrer\r\n"
    b"content-security-policy: default-src 'none'; frame-ancestors 'none'\r\n"
    b"cache-control: no-store\r\n"
)


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """Per-connection limits (seconds and bytes), from the KEEL_HTTP_* settings."""

    header_timeout: float
    body_timeout: float
    body_deadline: float
    max_head_bytes: int
    max_headers: int
    linger_seconds: float
    linger_bytes: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ServerLimits:
        return cls(
            header_timeout=settings.http_header_timeout_seconds,
            body_timeout=settings.http_body_timeout_seconds,
            body_deadline=settings.http_body_deadline_seconds,
            max_head_bytes=settings.http_max_head_bytes,
            max_headers=settings.http_max_headers,
            linger_seconds=settings.http_linger_seconds,
            linger_bytes=settings.http_linger_bytes,
        )


_process_limits: ServerLimits | None = None


def _limits_for(config: Config) -> ServerLimits:
    """The limits attached to this server's config (in-process servers), else the process
    settings (`serve`'s worker processes read the same KEEL_* environment)."""
    attached = getattr(config, "keel_limits", None)
    if isinstance(attached, ServerLimits):
        return attached
    global _process_limits
    if _process_limits is None:
        _process_limits = ServerLimits.from_settings(load_settings())
    return _process_limits


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn options for Keel's HTTP server (the one place that chooses them).

    Any: uvicorn's keyword arguments are of mixed types.
    """
    return {
        # uvloop, accepting every waiting connection each turn (ADR 0025).
        "loop": "keel.platform.listener:new_event_loop",
        "http": GuardedHttpToolsProtocol,
        # Frames written once per event for all subscribers (ADR 0024): no per-connection
        # compression, which would also compress every event once per subscriber.
        "ws": FrameWritingProtocol,
        "ws_per_message_deflate": False,
        "timeout_keep_alive": settings.http_keep_alive_timeout_seconds,
        # Only used if h11 were chosen instead: the same head cap.
        "h11_max_incomplete_event_size": settings.http_max_head_bytes,
    }


def server_config(app: Any, settings: Settings, **options: Any) -> Config:
    """A uvicorn Config for an app object served in this process (tests, embedding).

    Any: an ASGI application, and uvicorn's keyword arguments of mixed types.
    """
    config = Config(app, **server_options(settings), **options)
    config.keel_limits = ServerLimits.from_settings(settings)  # type: ignore[attr-defined]
    return config


class _HeadTooLarge(Exception):
    """Raised from a parser callback: too many headers."""


class _GuardedTransport:
    """The transport uvicorn's protocol writes to: a close becomes a lingering close while
    the client may still be sending the request we answered early."""

    __slots__ = ("_owner", "_raw")

    def __init__(self, raw: asyncio.Transport, owner: GuardedHttpToolsProtocol) -> None:
        self._raw = raw
        self._owner = owner

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._raw.write(data)

    def is_closing(self) -> bool:
        return self._owner.lingering or self._raw.is_closing()

    def close(self) -> None:
        self._owner.close_requested()

    def __getattr__(self, name: str) -> Any:
        # Any: whatever the wrapped transport's attribute is.
        return getattr(self._raw, name)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with timeouts, a head cap and a lingering close."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        # Any: the ASGI lifespan state uvicorn shares with every request.
        super().__init__(config, server_state, app_state, _loop)
        self.limits = _limits_for(config)
        self.raw: asyncio.Transport | None = None
        self.lingering = False
        self._lost = False
        self._reading_head = True
        self._head_bytes = 0
        self._header_count = 0
        self._head_too_large = False
        self._timer: asyncio.TimerHandle | None = None
        self._body_ends_at = 0.0
        self._discarded = 0

    # --- connection ------------------------------------------------------------------------

    def connection_made(  # type: ignore[override]
        self, transport: asyncio.Transport
    ) -> None:
        self.raw = transport
        super().connection_made(_GuardedTransport(transport, self))  # type: ignore[arg-type]
        # A connection that never sends a head is cut like a slow one.
        self._arm(self.limits.header_timeout, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._disarm()
        super().connection_lost(exc)

    def handle_websocket_upgrade(self) -> None:
        self._disarm()
        assert self.raw is not None
        self.transport = self.raw  # the WebSocket protocol gets the plain transport
        super().handle_websocket_upgrade()

    def data_received(self, data: bytes) -> None:
        if self.lingering:
            self._discarded += len(data)
            if self._discarded > self.limits.linger_bytes:
                self._close_now()
            return
        if self._reading_head:
            if self._timer is None:  # the first bytes of a request on a kept-alive connection
                self._arm(self.limits.header_timeout, self._head_timed_out)
            self._head_bytes += len(data)
        super().data_received(data)
        if self.lingering or self.raw is None or self.raw.is_closing():
            return
        if self._reading_head:
            if self._head_bytes > self.limits.max_head_bytes:
                self._reject(431, "HEADERS_TOO_LARGE", "Request header fields too large")
            return
        cycle = self.cycle
        if cycle is not None and cycle.more_body and not cycle.response_complete:
            # Waiting for body: the next chunk must come soon, the whole body in time.
            now = time.monotonic()
            if self._body_ends_at == 0.0:
                self._body_ends_at = now + self.limits.body_deadline
            wait = min(self.limits.body_timeout, self._body_ends_at - now)
            self._arm(max(wait, 0.0), self._body_timed_out)
        else:
            self._disarm()

    # --- parser callbacks ---------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_count = 0
        self._head_too_large = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.limits.max_headers:
            self._head_too_large = True
            raise _HeadTooLarge
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._body_ends_at = 0.0
        self._disarm()  # the head is in; data_received arms the body timer if one follows
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        # When the whole request (head and body) was in: the overload guard measures a
        # request's wait from here, so time spent behind a busy event loop counts too.
        if self.scope is not None:
            self.scope.setdefault("state", {})[RECEIVED_AT] = time.monotonic()
        super().on_message_complete()
        self._reading_head = True
        self._head_bytes = 0

    def send_400_response(self, msg: str) -> None:
        if self._head_too_large:
            self._reject(431, "HEADERS_TOO_LARGE", "Too many request header fields")
        else:
            self._reject(400, "BAD_REQUEST", "Malformed HTTP request")

    # --- timeouts ---------------------------------------------------------------------------

    def _arm(self, delay: float, callback: Any) -> None:
        # Any: a no-argument callable.
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_later(delay, callback)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _head_timed_out(self) -> None:
        self._timer = None
        if self._head_bytes == 0 or (self.cycle is not None and not self.cycle.response_complete):
            self._close_now()  # nothing to answer: an idle connection
            return
        self._reject(408, "REQUEST_TIMEOUT", "The request head did not arrive in time")

    def _body_timed_out(self) -> None:
        self._timer = None
        cycle = self.cycle
        if cycle is None or not cycle.more_body or cycle.response_complete:
            return  # pragma: no cover - the body completed as the timer fired
        if (
            self.flow is not None
            and self.flow.read_paused
            and time.monotonic() < self._body_ends_at
        ):
            # The application is not reading (yet): not the client's fault.
            self._arm(self.limits.body_timeout, self._body_timed_out)
            return
        # Tell the application the client is gone, and the client why.
        started = cycle.response_started
        cycle.disconnected = True
        cycle.message_event.set()
        if started:
            self._close_now()
        else:
            self._reject(408, "REQUEST_TIMEOUT", "The request body did not arrive in time")

    # --- answering and closing --------------------------------------------------------------

    def _reject(self, status: int, code: str, message: str) -> None:
        """Answer from the server itself (no application involved), then close lingering."""
        raw = self.raw
        if raw is None or raw.is_closing() or self.lingering:
            return
        path = self.scope.get("path", "") if self.scope is not None else ""
        body = error_payload(status_code=status, code=code, message=message, path=str(path or ""))
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head.extend([name, b": ", value, b"\r\n"])
        request_id = uuid.uuid4().hex.encode()
        head.append(
            b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n"
            b"x-request-id: %s\r\n" % (len(body), request_id)
        )
        head.append(SECURITY_HEADERS)
        head.append(b"\r\n")
        raw.write(b"".join(head) + body)
        self.linger()

    def close_requested(self) -> None:
        """uvicorn closes the connection: linger if the client may still be sending."""
        cycle = self.cycle
        unread = (cycle is not None and cycle.more_body and not cycle.disconnected) or (
            self._reading_head and self._head_bytes > 0
        )
        if unread and not self._lost:
            self.linger()
        else:
            self._close_now()

    def linger(self) -> None:
        """Send what is buffered and our FIN, then read and discard (bounded in bytes and
        time) until the client closes too: closing with unread input would reset the
        connection and the client could lose the answer."""
        raw = self.raw
        if raw is None or self.lingering or raw.is_closing():
            return
        self._disarm()
        self.lingering = True
        if self.limits.linger_seconds <= 0 or not raw.can_write_eof():
            self._close_now()
            return
        raw.resume_reading()
        raw.write_eof()
        self._timer = self.loop.call_later(self.limits.linger_seconds, self._close_now)

    def eof_received(self) -> None:
        # The client has sent everything: lingering is over (returning None closes).
        self._disarm()

    def _close_now(self) -> None:
        self._disarm()
        if self.raw is not None and not self.raw.is_closing():
            self.raw.close()
