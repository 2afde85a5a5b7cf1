"""The one translation of Keel's typed errors into gRPC statuses with google.rpc details."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from keel.platform.errors import AppError, ErrorDetail

DOMAIN = "keel"

# By HTTP status, the way every AppError subclass already classifies itself.
_CODES: dict[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.ALREADY_EXISTS,
    412: grpc.StatusCode.FAILED_PRECONDITION,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    422: grpc.StatusCode.FAILED_PRECONDITION,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
}
# Where the stable error code says more than the HTTP status does.
_BY_ERROR_CODE: dict[str, grpc.StatusCode] = {
    # The request_id was used before with another project (AIP-155): it exists already.
    "IDEMPOTENCY_KEY_REUSED": grpc.StatusCode.ALREADY_EXISTS,
}

# REST names fields in camelCase as the JSON bodies do; gRPC names them by proto path.
_FIELD_PATHS: dict[str, str] = {
    "name": "project.display_name",
    "description": "project.description",
    "status": "project.status",
    "cursor": "page_token",
    "limit": "page_size",
    "page": "page_token",
    "sort": "order_by",
    "userId": "parent",
    "body": "update_mask",
    "refreshToken": "refresh_token",
}


@dataclass(frozen=True, slots=True)
class Failure:
    """What a failed call answers: the status code and the google.rpc.Status it carries."""

    code: grpc.StatusCode
    status: grpc.Status

    @property
    def message(self) -> str:
        return str(self.status.details)


def status_code_of(error: AppError) -> grpc.StatusCode:
    return _BY_ERROR_CODE.get(error.code) or _CODES.get(error.status_code, grpc.StatusCode.INTERNAL)


def field_path(field: str) -> str:
    return _FIELD_PATHS.get(field, field)


def _pack(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def _violations(details: Sequence[ErrorDetail]) -> error_details_pb2.BadRequest:
    return error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(
                field=field_path(d.field), description=d.message
            )
            for d in details
        ]
    )


def _retry_after(error: AppError) -> int | None:
    raw = error.headers.get("Retry-After")
    return int(raw) if raw is not None and raw.isdigit() else None


def failure_of(error: AppError) -> Failure:
    """The gRPC answer to an AppError: its code, its message, and as details an ErrorInfo
    (reason = Keel's stable code), field violations and a retry delay when they apply."""
    code = status_code_of(error)
    details = [_pack(error_details_pb2.ErrorInfo(reason=error.code, domain=DOMAIN))]
    if error.details and code is grpc.StatusCode.INVALID_ARGUMENT:
        details.append(_pack(_violations(error.details)))
    retry_after = _retry_after(error)
    if retry_after is not None:
        details.append(
            _pack(
                error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=retry_after))
            )
        )
    message = error.message
    status = status_pb2.Status(code=code.value[0], message=message, details=details)
    trailers = tuple((name.lower(), value) for name, value in error.headers.items())
    converted = rpc_status.to_status(status)
    if trailers:
        converted = _WithTrailers(converted, trailers)
    return Failure(code=code, status=converted)


def internal_failure(request_id: str) -> Failure:
    """An unexpected error: no stack trace or internals, only the id to quote to support."""
    status = status_pb2.Status(
        code=code_pb2.INTERNAL,
        message=f"Internal server error (request id {request_id})",
        details=[_pack(error_details_pb2.ErrorInfo(reason="INTERNAL_ERROR", domain=DOMAIN))],
    )
    return Failure(code=grpc.StatusCode.INTERNAL, status=rpc_status.to_status(status))


def simple_failure(code: grpc.StatusCode, message: str, *, reason: str) -> Failure:
    status = status_pb2.Status(
        code=code.value[0],
        message=message,
        details=[_pack(error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN))],
    )
    return Failure(code=code, status=rpc_status.to_status(status))


class _WithTrailers(grpc.Status):  # type: ignore[misc]  # grpc ships no type hints
    """A status whose trailing metadata also carries the error's headers (Retry-After…)."""

    def __init__(self, status: grpc.Status, extra: tuple[tuple[str, str], ...]) -> None:
        self.code = status.code
        self.details = status.details
        self.trailing_metadata = (*status.trailing_metadata, *extra)
