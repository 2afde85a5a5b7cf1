"""Service errors as GraphQL errors: the REST codes in `extensions.code`, nothing leaked."""

from __future__ import annotations

from collections.abc import Iterator

import structlog
from graphql import ExecutionResult, GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.types.execution import ExecutionResult as StrawberryResult
from strawberry.types.execution import StreamExecutionResult

from keel.platform.errors import AppError

log = structlog.get_logger("keel.graphql")

TOO_COMPLEX = "QUERY_TOO_COMPLEX"
# Rejections graphql-core and strawberry raise before execution, recognised by message.
_LIMIT_MESSAGES = ("Document contains more than", "exceeds maximum number of tokens")


def too_complex(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": TOO_COMPLEX})


def _code_of(error: GraphQLError) -> str:
    if any(fragment in error.message for fragment in _LIMIT_MESSAGES):
        return TOO_COMPLEX
    if error.path is None:
        return "GRAPHQL_VALIDATION_FAILED"
    return "BAD_USER_INPUT"


def shape_error(error: GraphQLError) -> GraphQLError:
    """The error a client sees: AppErrors with their code and details, GraphQL's own
    document errors as they are, anything else masked as INTERNAL_ERROR (and logged)."""
    original = error.original_error
    extensions = dict(error.extensions or {})
    message = error.message
    if isinstance(original, AppError):
        message = original.message
        extensions = {"code": original.code}
        if original.details:
            extensions["details"] = [
                {"field": d.field, "message": d.message} for d in original.details
            ]
    elif original is not None and not isinstance(original, GraphQLError):
        log.error(
            "graphql_resolver_failed",
            error=type(original).__name__,
            path=".".join(str(p) for p in error.path or ()),
        )
        message = "Internal server error"
        extensions = {"code": "INTERNAL_ERROR"}
    elif "code" not in extensions:
        extensions["code"] = _code_of(error)
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions=extensions,
    )


def _shape_result(result: object) -> None:
    if isinstance(result, StrawberryResult | ExecutionResult) and result.errors:
        result.errors = [shape_error(e) for e in result.errors]


class ShapeErrors(SchemaExtension):
    """Applies shape_error to every result, over HTTP and WebSocket alike."""

    def on_operation(self) -> Iterator[None]:
        yield
        _shape_result(self.execution_context.result)

    def on_stream_result(self, result: StreamExecutionResult) -> Iterator[None]:
        # Each result of a subscription (and of an operation sent over the WebSocket).
        _shape_result(result)
        yield None
