"""Server interceptors: request id, access log, metrics and error mapping; overload guard and
rate limits; bearer-token authentication. Each wraps the method's behaviour."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import structlog
from google.protobuf.message import DecodeError
from prometheus_client import Counter, Histogram
from sqlalchemy.exc import TimeoutError as PoolTimeout

from keel.platform.actor import VerifiedToken
from keel.platform.auth import Authenticator
from keel.platform.errors import (
    AppError,
    BadRequest,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
)
from keel.platform.http import REQUEST_ID_RE
from keel.platform.metrics import OVERLOAD_REJECTIONS, RATE_LIMIT_REJECTIONS, REGISTRY
from keel.platform.ratelimit import LimiterUnavailable, RateLimiter
from keel.platform.security import TokenCodec, TokenError
from keel.rpc import calls
from keel.rpc.calls import Call
from keel.rpc.errors import Failure, failure_of, internal_failure, simple_failure

access_log = structlog.get_logger("keel.grpc.access")
log = structlog.get_logger("keel.grpc")

# Any (here and below): gRPC hands behaviours protobuf messages of the method's own types and
# a ServicerContext, and grpcio ships no type hints.
Unary = Callable[[Any, Any], Awaitable[Any]]
Streaming = Callable[[Any, Any], AsyncIterator[Any]]

KEEL_PREFIX = "/keel.v1."
PUBLIC_SERVICES = frozenset({"keel.v1.AuthService"})
UNLIMITED_SERVICES = frozenset({"grpc.health.v1.Health"})

GRPC_HANDLING = Histogram(
    "grpc_server_handling_seconds",
    "gRPC call latency (a stream: its whole life) by service, method and status code",
    ["grpc_service", "grpc_method", "grpc_code"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
GRPC_HANDLED = Counter(
    "grpc_server_handled",
    "gRPC calls completed by service, method and status code",
    ["grpc_service", "grpc_method", "grpc_code"],
    registry=REGISTRY,
)


def _metadata(context: Any, key: str) -> str | None:
    for item in context.invocation_metadata() or ():
        if item.key == key:
            return str(item.value)
    return None


def bearer_token(context: Any) -> str | None:
    header = _metadata(context, "authorization")
    if header is None or header[:7].lower() != "bearer ":
        return None
    return header[7:].strip() or None


class _Wrapping(grpc.aio.ServerInterceptor):  # type: ignore[misc]  # grpc ships no type hints
    """Wraps the unary-request behaviours of a method handler (client-streaming methods, that is
    server reflection, pass through untouched)."""

    def wraps(self, method: str) -> bool:
        return True

    async def before(self, call: Call) -> None:
        """What this interceptor checks before the method runs; raises to refuse the call."""
        raise NotImplementedError

    def unary(self, behaviour: Unary) -> Unary:
        async def checked(request: Any, context: Any) -> Any:
            await self.before(calls.current())
            return await behaviour(request, context)

        return checked

    def streaming(self, behaviour: Streaming) -> Streaming:
        async def checked(request: Any, context: Any) -> AsyncIterator[Any]:
            await self.before(calls.current())
            async for message in behaviour(request, context):
                yield message

        return checked

    async def intercept_service(
        self, continuation: Callable[[Any], Awaitable[Any]], details: Any
    ) -> Any:
        handler = await continuation(details)
        if handler is None or handler.request_streaming or not self.wraps(details.method):
            return handler
        if handler.response_streaming:
            return handler._replace(unary_stream=self.streaming(handler.unary_stream))
        return handler._replace(unary_unary=self.unary(handler.unary_unary))


class ObservabilityInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]  # untyped grpc
    """Outermost: the request id, one access-log line and the metrics of every call, and the
    one place where errors become statuses. It also decodes the request itself, so that a
    malformed message is INVALID_ARGUMENT rather than grpc's INTERNAL."""

    async def intercept_service(
        self, continuation: Callable[[Any], Awaitable[Any]], details: Any
    ) -> Any:
        handler = await continuation(details)
        if handler is None or handler.request_streaming:
            return handler
        method: str = details.method
        decode = handler.request_deserializer
        if handler.response_streaming:
            return handler._replace(
                request_deserializer=None,
                unary_stream=self._streaming(method, decode, handler.unary_stream),
            )
        return handler._replace(
            request_deserializer=None, unary_unary=self._unary(method, decode, handler.unary_unary)
        )

    def _begin(self, method: str, context: Any) -> Call:
        given = _metadata(context, "x-request-id")
        call = Call(
            method=method,
            request_id=given if given and REQUEST_ID_RE.match(given) else calls.new_request_id(),
            ip=calls.peer_ip(context.peer()),
            user_agent=_metadata(context, "user-agent"),
            token=bearer_token(context),
        )
        calls.begin(call)
        structlog.contextvars.bind_contextvars(request_id=call.request_id)
        context.set_trailing_metadata((("x-request-id", call.request_id),))
        return call

    def _failure(self, call: Call, exc: BaseException) -> Failure:
        if isinstance(exc, AppError):
            if exc.status_code >= 500:
                log.error("app_error", code=exc.code, message=exc.message)
            return failure_of(exc)
        if isinstance(exc, PoolTimeout):
            log.warning("db_pool_timeout")
            return failure_of(
                ServiceUnavailable(
                    "The database is busy; try again shortly", headers={"Retry-After": "1"}
                )
            )
        if isinstance(exc, TimeoutError):
            return simple_failure(
                grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline exceeded", reason="DEADLINE_EXCEEDED"
            )
        access_log.error("unhandled_error", error_type=type(exc).__name__, exc_info=exc)
        return internal_failure(call.request_id)

    def _finish(self, call: Call, code: grpc.StatusCode, started: float) -> None:
        elapsed = time.perf_counter() - started
        name = code.name
        GRPC_HANDLING.labels(call.service, call.name, name).observe(elapsed)
        GRPC_HANDLED.labels(call.service, call.name, name).inc()
        access_log.info(
            "rpc",
            method=call.method,
            code=name,
            peer=call.ip,
            user_id=str(call.actor.user_id) if call.actor else None,
            duration_ms=round(elapsed * 1000, 2),
        )
        structlog.contextvars.unbind_contextvars("request_id", "user_id")

    @staticmethod
    def _decode(decode: Callable[[bytes], Any] | None, raw: Any) -> Any:
        if decode is None:
            return raw
        try:
            return decode(raw)
        except (DecodeError, ValueError) as exc:
            raise BadRequest("The request is not a valid message", code="INVALID_MESSAGE") from exc

    async def _abort(self, context: Any, call: Call, failure: Failure) -> None:
        status = failure.status
        trailers = (*status.trailing_metadata, ("x-request-id", call.request_id))
        await context.abort(status.code, status.details, trailing_metadata=trailers)

    def _unary(self, method: str, decode: Callable[[bytes], Any] | None, behaviour: Unary) -> Unary:
        async def observed(raw: Any, context: Any) -> Any:
            started = time.perf_counter()
            call = self._begin(method, context)
            code: grpc.StatusCode | None = grpc.StatusCode.OK
            try:
                request = self._decode(decode, raw)
                remaining = context.time_remaining()
                # The deadline also bounds our own work (queries, hashing): past it the
                # client has stopped waiting.
                async with asyncio.timeout(remaining if remaining is not None else None):
                    return await behaviour(request, context)
            except asyncio.CancelledError:
                code = grpc.StatusCode.CANCELLED
                raise
            except Exception as exc:
                failure = self._failure(call, exc)
                # Counted before the client hears of it: abort sends the status at once.
                self._finish(call, failure.code, started)
                code = None
                await self._abort(context, call, failure)
            finally:
                if code is not None:
                    self._finish(call, code, started)

        return observed

    def _streaming(
        self, method: str, decode: Callable[[bytes], Any] | None, behaviour: Streaming
    ) -> Streaming:
        async def observed(raw: Any, context: Any) -> AsyncIterator[Any]:
            started = time.perf_counter()
            call = self._begin(method, context)
            code: grpc.StatusCode | None = grpc.StatusCode.OK
            try:
                request = self._decode(decode, raw)
                async for message in behaviour(request, context):
                    yield message
            except asyncio.CancelledError:
                code = grpc.StatusCode.CANCELLED  # the client went away, or the deadline passed
                raise
            except Exception as exc:
                failure = self._failure(call, exc)
                # Counted before the client hears of it: abort sends the status at once.
                self._finish(call, failure.code, started)
                code = None
                await self._abort(context, call, failure)
            finally:
                if code is not None:
                    self._finish(call, code, started)

        return observed


class ProtectionInterceptor(_Wrapping):
    """The overload guard and the rate limits of REST, with the same keys, so a client's
    budget is one across both protocols: sign-in methods per IP under the stricter limit,
    calls with a valid access token per user, others per IP. Health checks are exempt."""

    def __init__(
        self,
        *,
        limiter: RateLimiter | None,
        tokens: TokenCodec,
        max_concurrency: int,
    ) -> None:
        self.limiter = limiter
        self.tokens = tokens
        self.max_concurrency = max_concurrency
        self.in_flight = 0

    def wraps(self, method: str) -> bool:
        return method.rsplit("/", 2)[-2] not in UNLIMITED_SERVICES

    def _verify(self, call: Call) -> str | None:
        if call.token is None:
            return None
        try:
            claims = self.tokens.decode(call.token, token_type="access")
        except TokenError:
            return None  # an invalid token counts against the IP, as anonymous
        call.verified = VerifiedToken(token=call.token, claims=claims)
        subject = claims.get("sub")
        return str(subject) if subject else None

    async def before(self, call: Call) -> None:
        if self.limiter is None:
            self._verify(call)
            return
        ip = call.ip or "unknown"
        try:
            if call.service in PUBLIC_SERVICES:
                decision = await self.limiter.hit(self.limiter.auth_endpoints, "auth", ip)
            elif (user := self._verify(call)) is not None:
                decision = await self.limiter.hit(self.limiter.authenticated, "user", user)
            else:
                decision = await self.limiter.hit(self.limiter.anonymous, "ip", ip)
        except LimiterUnavailable as exc:
            raise ServiceUnavailable(
                "Rate limiting is unavailable; retry shortly", headers={"Retry-After": "5"}
            ) from exc
        if not decision.allowed:
            RATE_LIMIT_REJECTIONS.inc()
            raise TooManyRequests(
                "Too many requests; retry later",
                headers={
                    "Retry-After": str(decision.reset_after),
                    **{k.decode(): v.decode() for k, v in decision.headers()},
                },
            )

    def unary(self, behaviour: Unary) -> Unary:
        # Streams live long: only unary calls count as in flight (as WebSockets do not).
        checked = super().unary(behaviour)

        async def guarded(request: Any, context: Any) -> Any:
            if self.in_flight >= self.max_concurrency:
                OVERLOAD_REJECTIONS.inc()
                raise ServiceUnavailable(
                    "The server is at capacity; retry shortly",
                    code="OVERLOADED",
                    headers={"Retry-After": "1"},
                )
            self.in_flight += 1
            try:
                return await checked(request, context)
            finally:
                self.in_flight -= 1

        return guarded


class AuthenticationInterceptor(_Wrapping):
    """Keel's methods need a live access token (AuthService's excepted): the one
    Authenticator checks signature, expiry and that the session (`sid`) is not revoked."""

    def __init__(self, authenticator: Authenticator) -> None:
        self.authenticator = authenticator

    def wraps(self, method: str) -> bool:
        return method.startswith(KEEL_PREFIX) and method.rsplit("/", 2)[-2] not in PUBLIC_SERVICES

    async def before(self, call: Call) -> None:
        if call.token is None:
            raise Unauthorized("Missing bearer token")
        verified = call.verified if call.verified and call.verified.token == call.token else None
        call.actor = await self.authenticator.authenticate(call.token, verified=verified)
        structlog.contextvars.bind_contextvars(user_id=str(call.actor.user_id))
