"""Request protection: client IP, overload guard and rate limits (docs/SPEC.md §6), one layer.

- Client IP: the socket peer, unless the peer is a trusted proxy; then the right-most
  X-Forwarded-For hop that is not itself a trusted proxy. Stored in scope["state"]["client_ip"].
- Overload guard (`AdmissionGate`): at most `overload_max_concurrency` requests are served
  at once in this process; up to `overload_queue_size` more wait in line, each at most
  `overload_queue_timeout_ms`, and get a 503 with Retry-After when that runs out; beyond
  the line, a 503 at once. A request never waits unboundedly: excess load gets fast 503s
  while the admitted requests keep their latency. (Counting only requests in flight, with
  a limit above the connections a process holds, never shed: requests queued inside, on
  the database pool and the event loop, for seconds.) The wait counts from when the server
  had the whole request, so a request that sat behind a busy event loop longer than the
  queue timeout is refused at once. Event streams are long-lived and do not take a place.
- Rate limits (sliding window counter): per user for a valid access token (the JWT is
  signature-checked here without a database hit), otherwise per IP; stricter per-IP limits on
  sign-in endpoints. In-process through `limits` (its MemoryStorage) when embedded; shared
  through Redis when configured, with one Lua script doing what `limits` does in two round
  trips (hit, then window stats for the headers): on a 2-core machine those two trips cost
  ~20 % of the authenticated read throughput (docs/performance.md). For large limits an
  instance reserves a small lease of hits per round trip (see `sliding_window.lease_size`).
  When Redis fails the limiter falls back to in-process counting (fail-open, the default) or
  refuses with 503 (fail-closed); either way it logs once per outage and /ready reports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import math
import time
from collections import deque
from collections.abc import MutableMapping
from typing import Any

import structlog
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keel.platform.actor import VerifiedToken
from keel.platform.errors import send_error
from keel.platform.http import header
from keel.platform.metrics import OVERLOAD_REJECTIONS, RATE_LIMIT_REJECTIONS
from keel.platform.outage import Outage
from keel.platform.security import TokenCodec, TokenError
from keel.platform.sliding_window import Decision, RedisSlidingWindow
from keel.settings import Settings

log = structlog.get_logger("keel.ratelimit")

EXEMPT_PATHS = frozenset({"/health", "/ready", "/metrics"})
# Endless responses (Server-Sent Events): rate-limited, but they hold no place in the gate.
STREAM_PATHS = frozenset({"/api/v1/events"})
# scope["state"] key: time.monotonic() when the server had the whole request (set by
# keel.platform.server); without it, the request counts as arrived when the guard sees it.
RECEIVED_AT = "keel.received_at"
AUTH_PATHS = frozenset(
    {
        "/api/v1/auth/login",
        "/api/v1/auth/register",
        "/api/v1/auth/refresh",
        # The mail-link endpoints (SPEC §11): sending mail and guessing tokens, per IP.
        "/api/v1/auth/password/forgot",
        "/api/v1/auth/password/reset",
        "/api/v1/auth/email/verify",
        "/api/v1/auth/oidc/exchange",
    }
)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
VERIFIED_TOKENS_MAX = 10000


class LimiterUnavailable(Exception):
    """Redis is down and the limiter is configured to fail closed."""


class RateLimiter:
    """Sliding-window limits over Redis (shared) or memory, with an in-process fallback."""

    def __init__(
        self,
        *,
        anonymous: str,
        authenticated: str,
        auth_endpoints: str,
        redis: Redis | None = None,
        fail_open: bool = True,
    ) -> None:
        self.anonymous: RateLimitItem = parse(anonymous)
        self.authenticated: RateLimitItem = parse(authenticated)
        self.auth_endpoints: RateLimitItem = parse(auth_endpoints)
        self._local = SlidingWindowCounterRateLimiter(MemoryStorage())
        self._shared = RedisSlidingWindow(redis) if redis is not None else None
        self._fail_open = fail_open
        self._outage = Outage("rate_limit_store", logger=log, fail_open=fail_open)

    @classmethod
    def from_settings(cls, settings: Settings, redis: Redis | None) -> RateLimiter:
        return cls(
            anonymous=settings.rate_limit_anonymous,
            authenticated=settings.rate_limit_authenticated,
            auth_endpoints=settings.rate_limit_auth_endpoints,
            redis=redis,
            fail_open=settings.rate_limit_fail_open,
        )

    async def probe(self) -> None:
        """Readiness: fails while the shared store is in an outage."""
        if self._outage.down:
            raise LimiterUnavailable("rate-limit store unreachable")

    async def hit(self, item: RateLimitItem, *identifiers: str) -> Decision:
        if self._shared is not None and self._outage.usable():
            try:
                decision = await self._shared.hit(item, ":".join(identifiers))
            except (RedisError, OSError) as exc:
                self._outage.failed(exc)
            else:
                self._outage.recovered()
                return decision
        if self._outage.down and not self._fail_open:
            raise LimiterUnavailable("rate-limit store unreachable")
        return await self._apply(self._local, item, identifiers)

    @staticmethod
    async def _apply(
        limiter: SlidingWindowCounterRateLimiter, item: RateLimitItem, identifiers: tuple[str, ...]
    ) -> Decision:
        allowed = await limiter.hit(item, *identifiers)
        stats = await limiter.get_window_stats(item, *identifiers)
        reset_after = max(0, math.ceil(stats.reset_time - time.time()))
        if not allowed:
            reset_after = max(1, reset_after)
        return Decision(
            allowed=allowed, limit=item.amount, remaining=stats.remaining, reset_after=reset_after
        )


def parse_networks(entries: list[str]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def client_ip(scope: Scope, trusted: tuple[IPNetwork, ...]) -> str | None:
    """The caller's IP: the peer, or through trusted proxies the right-most untrusted hop."""
    peer = scope.get("client")
    current: str | None = peer[0] if peer else None
    if not trusted or current is None:
        return current
    forwarded = header(scope, b"x-forwarded-for")
    if not forwarded:
        return current
    hops = [hop.strip() for hop in forwarded.decode("latin-1").split(",")]
    for hop in reversed(hops):
        if not _is_trusted(current, trusted):
            break
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            break  # garbage left of a trusted hop: the trusted hop is the best we know
        current = hop
    return current


def _is_trusted(address: str, trusted: tuple[IPNetwork, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


class AdmissionGate:
    """At most `limit` holders at once; up to `queue_size` more wait, first come first
    served, at most `queue_timeout` seconds each. `enter` says whether the caller got in;
    whoever got in must call `leave`."""

    def __init__(self, *, limit: int, queue_size: int, queue_timeout: float) -> None:
        self.limit = limit
        self.queue_size = queue_size
        self.queue_timeout = queue_timeout
        self.active = 0
        self._waiting: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    async def enter(self, arrived: float | None = None) -> bool:
        """Whether the caller got in, having arrived at `arrived` (time.monotonic()): one
        that already waited longer than the queue timeout (behind a busy event loop) is
        refused at once, and the wait in line ends `queue_timeout` after arrival."""
        now = time.monotonic()
        remaining = self.queue_timeout - (now - arrived if arrived is not None else 0.0)
        if self.queue_timeout > 0 and remaining <= 0:
            return False
        if self.active < self.limit and not self._waiting:
            self.active += 1
            return True
        if len(self._waiting) >= self.queue_size or remaining <= 0:
            return False
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(turn)
        try:
            async with asyncio.timeout(remaining):
                await turn
        except TimeoutError:
            # The place may have been handed over just as the wait ran out: then keep it.
            return turn.done() and not turn.cancelled()
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.leave()  # handed over to a request that went away: pass it on
            raise
        finally:
            if not turn.done():
                turn.cancel()
            with contextlib.suppress(ValueError):  # leave() took it off the line already
                self._waiting.remove(turn)
        return True

    def leave(self) -> None:
        """Hand the place to the first one still waiting, or free it."""
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self.active -= 1


class ProtectionMiddleware:
    """Pure ASGI: client IP, overload guard and rate limits, before any routing work."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        settings: Settings,
        tokens: TokenCodec,
        limiter: RateLimiter | None,
    ) -> None:
        self.app = app
        self.tokens = tokens
        self.limiter = limiter if settings.rate_limit_enabled else None
        self.trusted = parse_networks(settings.trusted_proxies)
        self.gate = AdmissionGate(
            limit=settings.overload_max_concurrency,
            queue_size=settings.overload_queue_size,
            queue_timeout=settings.overload_queue_timeout_ms / 1000,
        )
        # token -> (exp, claims) of tokens whose signature already verified: clients reuse a
        # token for its whole life, and PyJWT's decode costs ≈ 60 µs (docs/performance.md).
        self._verified: dict[str, tuple[float, dict[str, Any]]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        state: MutableMapping[str, Any] = scope.setdefault("state", {})
        ip = client_ip(scope, self.trusted)
        state["client_ip"] = ip
        if scope["path"] in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            # An upgrade counts as one request against the same limits (the overload guard is
            # for short requests: a socket stays open for hours); refused before it opens.
            if await self._admitted(scope, ip, state, send) is not None:
                await self.app(scope, receive, send)
            return
        if _has_body(scope):
            # Admitted only once its body has arrived: a client stalling its upload holds a
            # socket (cut by the server's body timeout), never a place in the guard.
            receive = await _prefetched(receive)
            if receive is _GONE:
                return  # the client went away (or timed out) before its body arrived
        gated = scope["path"] not in STREAM_PATHS
        if gated and not await self.gate.enter(state.get(RECEIVED_AT)):
            OVERLOAD_REJECTIONS.inc()
            await _reject(
                send,
                scope,
                status=503,
                code="OVERLOADED",
                message="The server is at capacity; retry shortly",
                headers=[(b"retry-after", b"1")],
            )
            return
        try:
            extra = await self._admitted(scope, ip, state, send)
            if extra is None:
                return
            if not extra:  # no limiter
                await self.app(scope, receive, send)
                return

            async def send_with_headers(message: Message) -> None:
                if message["type"] == "http.response.start":
                    message["headers"] = [*message.get("headers", ()), *extra]
                await send(message)

            await self.app(scope, receive, send_with_headers)
        finally:
            if gated:
                self.gate.leave()

    async def _admitted(
        self, scope: Scope, ip: str | None, state: MutableMapping[str, Any], send: Send
    ) -> list[tuple[bytes, bytes]] | None:
        """The rate-limit headers for an admitted request; None once it has been refused."""
        if self.limiter is None:
            return []
        try:
            decision = await self._check(scope, ip or "unknown", state)
        except LimiterUnavailable:
            await _reject(
                send,
                scope,
                status=503,
                code="SERVICE_UNAVAILABLE",
                message="Rate limiting is unavailable; retry shortly",
                headers=[(b"retry-after", b"5")],
            )
            return None
        if not decision.allowed:
            RATE_LIMIT_REJECTIONS.inc()
            await _reject(
                send,
                scope,
                status=429,
                code="RATE_LIMITED",
                message="Too many requests; retry later",
                headers=[(b"retry-after", str(decision.reset_after).encode()), *decision.headers()],
            )
            return None
        return decision.headers()

    async def _check(self, scope: Scope, ip: str, state: MutableMapping[str, Any]) -> Decision:
        assert self.limiter is not None
        if scope["path"] in AUTH_PATHS:
            return await self.limiter.hit(self.limiter.auth_endpoints, "auth", ip)
        user = self._user(scope, state)
        if user is not None:
            return await self.limiter.hit(self.limiter.authenticated, "user", user)
        return await self.limiter.hit(self.limiter.anonymous, "ip", ip)

    def _user(self, scope: Scope, state: MutableMapping[str, Any]) -> str | None:
        authorization = header(scope, b"authorization")
        if not authorization or authorization[:7].lower() != b"bearer ":
            return None
        token = authorization[7:].strip().decode("latin-1")
        known = self._verified.get(token)
        if known is not None and known[0] > time.time():
            claims = known[1]
        else:
            try:
                claims = self.tokens.decode(token, token_type="access")
            except TokenError:
                self._verified.pop(token, None)
                return None  # an invalid token counts against the IP, as anonymous
            if len(self._verified) >= VERIFIED_TOKENS_MAX:
                self._verified.clear()  # crude but O(1) amortised; refills with live tokens
            self._verified[token] = (float(claims.get("exp", 0)), claims)
        # Verified claims, so the authentication dependency need not decode the token again.
        state["access_token"] = VerifiedToken(token=token, claims=claims)
        subject = claims.get("sub")
        return str(subject) if subject else None


def _has_body(scope: Scope) -> bool:
    for key, value in scope.get("headers", ()):
        if key == b"content-length":
            return bool(value != b"0")
        if key == b"transfer-encoding":
            return True
    return False


async def _gone() -> Message:
    return {"type": "http.disconnect"}


_GONE: Receive = _gone


async def _prefetched(receive: Receive) -> Receive:
    """Read the whole request body now (bounded by the body-size limit of the layer
    outside) and hand the application a receive that replays it; _GONE if the client left."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return _GONE
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    replay: list[Message] = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

    async def replaying() -> Message:
        return replay.pop() if replay else await receive()

    return replaying


async def _reject(
    send: Send,
    scope: Scope,
    *,
    status: int,
    code: str,
    message: str,
    headers: list[tuple[bytes, bytes]],
) -> None:
    # Rendered here rather than raised: this layer sits outside FastAPI's exception handlers.
    if scope["type"] == "websocket":
        send = _websocket_denial(scope, send)
    await send_error(
        send, status=status, code=code, message=message, path=scope["path"], headers=headers
    )


def _websocket_denial(scope: Scope, send: Send) -> Send:
    """A `send` that turns an HTTP error response into the refusal of a WebSocket upgrade: the
    same status and body where the server supports the ASGI denial-response extension,
    otherwise a close before accept (which the server answers with 403)."""
    if "websocket.http.response" in scope.get("extensions", {}):

        async def deny(message: Message) -> None:
            await send({**message, "type": "websocket." + message["type"]})

        return deny

    async def close(message: Message) -> None:
        if message["type"] == "http.response.start":
            await send({"type": "websocket.close", "code": 1008})

    return close
