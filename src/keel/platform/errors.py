"""Typed application errors and the one error envelope every layer renders (docs/SPEC.md §2)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

import orjson
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from sqlalchemy.exc import TimeoutError as SQLAlchemyPoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import Send

from keel.platform.timestamps import now_z

log = structlog.get_logger("keel.errors")


class ErrorDetail(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    """The error envelope (documented once, used for every error response)."""

    error: str = Field(examples=["Validation failed"])
    code: str = Field(examples=["VALIDATION_ERROR"])
    details: list[ErrorDetail] = Field(default_factory=list)
    timestamp: str = Field(examples=["2026-11-25T10:30:00Z"])
    path: str = Field(examples=["/api/v1/projects"])
    request_id: str | None = Field(default=None, alias="requestId")


class AppError(Exception):
    """Base of every error a service may raise; rendered by one handler."""

    status_code: ClassVar[int] = 500
    code: ClassVar[str] = "INTERNAL_ERROR"
    default_message: ClassVar[str] = "Internal server error"

    def __init__(
        self,
        message: str | None = None,
        *,
        details: Sequence[ErrorDetail] | None = None,
        headers: Mapping[str, str] | None = None,
        code: str | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.details = list(details or [])
        self.headers = dict(headers or {})
        if code is not None:
            self.code = code  # type: ignore[misc]  # per-instance override of the class code
        super().__init__(self.message)


class BadRequest(AppError):
    status_code = 400
    code = "BAD_REQUEST"
    default_message = "Bad request"


class ValidationFailed(BadRequest):
    code = "VALIDATION_ERROR"
    default_message = "Validation failed"


class Unauthorized(AppError):
    status_code = 401
    code = "UNAUTHORIZED"
    default_message = "Authentication required"

    def __init__(self, message: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(message, **kwargs)


class Forbidden(AppError):
    status_code = 403
    code = "FORBIDDEN"
    default_message = "You are not allowed to do this"


class NotFound(AppError):
    status_code = 404
    code = "NOT_FOUND"
    default_message = "Resource not found"


class Conflict(AppError):
    status_code = 409
    code = "CONFLICT"
    default_message = "Conflict"


class PreconditionFailed(AppError):
    status_code = 412
    code = "PRECONDITION_FAILED"
    default_message = "The resource has changed; reload it and try again"


class UnprocessableEntity(AppError):
    status_code = 422
    code = "UNPROCESSABLE_ENTITY"
    default_message = "The request cannot be processed"


class TooManyRequests(AppError):
    status_code = 429
    code = "RATE_LIMITED"
    default_message = "Too many requests"


class ServiceUnavailable(AppError):
    status_code = 503
    code = "SERVICE_UNAVAILABLE"
    default_message = "Service temporarily unavailable"


def error_payload(
    *,
    status_code: int,
    code: str,
    message: str,
    path: str,
    details: Iterable[ErrorDetail] = (),
    request_id: str | None = None,
) -> bytes:
    body: dict[str, object] = {
        "error": message,
        "code": code,
        "details": [{"field": d.field, "message": d.message} for d in details],
        "timestamp": now_z(),
        "path": path,
    }
    if request_id:
        body["requestId"] = request_id
    return orjson.dumps(body)


async def send_error(
    send: Send,
    *,
    status: int,
    code: str,
    message: str,
    path: str,
    request_id: str | None = None,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    """Write the error envelope straight to an ASGI `send`: for the raw middlewares that sit
    outside FastAPI's exception handlers."""
    body = error_payload(
        status_code=status, code=code, message=message, path=path, request_id=request_id
    )
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def error_response(
    request: Request,
    *,
    status_code: int,
    code: str,
    message: str,
    details: Iterable[ErrorDetail] = (),
    headers: Mapping[str, str] | None = None,
) -> Response:
    # The request id is always in the X-Request-ID header; 5xx bodies repeat it so a user
    # can quote it to support without looking at headers.
    request_id = getattr(request.state, "request_id", None) if status_code >= 500 else None
    return Response(
        content=error_payload(
            status_code=status_code,
            code=code,
            message=message,
            path=request.url.path,
            details=details,
            request_id=request_id,
        ),
        status_code=status_code,
        media_type="application/json",
        headers=dict(headers or {}),
    )


_STATUS_CODES: dict[int, tuple[str, str]] = {
    400: ("BAD_REQUEST", "Bad request"),
    401: ("UNAUTHORIZED", "Authentication required"),
    403: ("FORBIDDEN", "You are not allowed to do this"),
    404: ("NOT_FOUND", "Resource not found"),
    405: ("METHOD_NOT_ALLOWED", "Method not allowed"),
    406: ("NOT_ACCEPTABLE", "Not acceptable"),
    409: ("CONFLICT", "Conflict"),
    412: ("PRECONDITION_FAILED", "Precondition failed"),
    413: ("PAYLOAD_TOO_LARGE", "Request body is too large"),
    415: ("UNSUPPORTED_MEDIA_TYPE", "Unsupported media type"),
    422: ("UNPROCESSABLE_ENTITY", "The request cannot be processed"),
    429: ("RATE_LIMITED", "Too many requests"),
    503: ("SERVICE_UNAVAILABLE", "Service temporarily unavailable"),
}

_CAMEL_RE = re.compile(r"_([a-z0-9])")


def camel(name: str) -> str:
    return _CAMEL_RE.sub(lambda m: m.group(1).upper(), name)


def _field_name(loc: Sequence[int | str]) -> str:
    # loc is ("body", "settings", "theme") or ("query", "limit"); drop the source.
    parts = (
        list(loc[1:])
        if loc and loc[0] in {"body", "query", "path", "header", "cookie"}
        else list(loc)
    )
    return ".".join(camel(str(p)) for p in parts) or "body"


_MESSAGES = {
    "missing": "Field is required",
    "string_too_short": "Must be at least {min_length} characters",
    "string_too_long": "Must be at most {max_length} characters",
    "less_than_equal": "Must be at most {le}",
    "greater_than_equal": "Must be at least {ge}",
    "int_parsing": "Must be an integer",
    "int_type": "Must be an integer",
    "string_type": "Must be a string",
    "bool_type": "Must be a boolean",
    "bool_parsing": "Must be a boolean",
    "enum": "Must be one of: {expected}",
    "literal_error": "Must be one of: {expected}",
    "uuid_parsing": "Must be a valid UUID",
    "uuid_type": "Must be a valid UUID",
    "datetime_parsing": "Must be an ISO-8601 date-time",
    "datetime_from_date_parsing": "Must be an ISO-8601 date-time",
    "extra_forbidden": "Unknown field",
    "model_attributes_type": "Must be an object",
    "dict_type": "Must be an object",
    "model_type": "Must be an object",
    "list_type": "Must be an array",
}


def _detail_message(err: Mapping[str, Any]) -> str:
    template = _MESSAGES.get(str(err.get("type")))
    ctx = err.get("ctx") or {}
    if template:
        try:
            return template.format(**ctx)
        except (KeyError, IndexError):
            pass
    message = str(err.get("msg", "Invalid value"))
    # pydantic prefixes messages from custom validators with "Value error, ".
    return message.removeprefix("Value error, ")


def validation_details(errors: Sequence[Mapping[str, Any]]) -> list[ErrorDetail]:
    return [
        ErrorDetail(field=_field_name(e.get("loc", ())), message=_detail_message(e)) for e in errors
    ]


async def _app_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AppError)
    return app_error_response(request, exc)


def app_error_response(request: Request, exc: AppError) -> Response:
    """How every AppError is answered (FastAPI's handler, and keel.platform.shortcuts')."""
    if exc.status_code >= 500:
        log.error("app_error", code=exc.code, message=exc.message)
    return error_response(
        request,
        status_code=exc.status_code,
        code=exc.code,
        message=exc.message,
        details=exc.details,
        headers=exc.headers,
    )


async def _validation_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_response(
            request, status_code=400, code="INVALID_JSON", message="Request body is not valid JSON"
        )
    return error_response(
        request,
        status_code=400,
        code="VALIDATION_ERROR",
        message="Validation failed",
        details=validation_details(errors),
    )


async def _http_exception_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code, default = _STATUS_CODES.get(exc.status_code, ("HTTP_ERROR", "Request failed"))
    message = default
    if exc.status_code == 400:
        # FastAPI raises a 400 HTTPException when the body cannot be decoded (bad UTF-8).
        code, message = "INVALID_JSON", "Request body is not valid JSON"
    return error_response(
        request,
        status_code=exc.status_code,
        code=code,
        message=message,
        headers=dict(exc.headers or {}),
    )


async def _pool_timeout_handler(request: Request, exc: Exception) -> Response:
    # Raised wherever a connection is checked out (request transactions and the short ones
    # services open themselves): the database is saturated, so tell the client to come back.
    log.warning("db_pool_timeout")
    return error_response(
        request,
        status_code=503,
        code="SERVICE_UNAVAILABLE",
        message="The database is busy; try again shortly",
        headers={"Retry-After": "1"},
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error_handler)
    app.add_exception_handler(SQLAlchemyPoolTimeout, _pool_timeout_handler)
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(StarletteHTTPException, _http_exception_handler)
    # Unhandled exceptions are rendered by keel.platform.http.PlatformMiddleware.


def error_responses(*errors: type[AppError]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` for a route, from the AppError classes it may raise."""
    responses: dict[int | str, dict[str, Any]] = {
        400: {"model": ErrorBody, "description": "Validation failed"}
    }
    for error in errors:
        responses[error.status_code] = {"model": ErrorBody, "description": error.default_message}
    return responses
