"""A shorter path through graphql-core for the plain leaf fields that make up most of a list.

`projects(first: 20)` with six fields per node resolves about 160 fields, ~120 of them plain
attributes (`name`, `status`, …) of an object already built. graphql-core gives every field
the same treatment: a resolve-info object, argument coercion, awaitable checks and the
completion dispatch, which is most of a GraphQL request's CPU (docs/performance.md). Here a
field with strawberry's default resolver, no arguments and a scalar or enum type is read and
serialized directly; anything else (a null, a value that does not serialize, middleware,
arguments) takes graphql-core's own path unchanged, so results and errors stay the same.
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLLeafType, GraphQLNonNull, GraphQLObjectType, Undefined, is_leaf_type
from graphql.execution.collect_fields import FieldDetailsList
from graphql.pyutils import Path
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext


class FastLeafExecutionContext(StrawberryGraphQLCoreExecutionContext):
    def execute_operation(self, serially: bool | None = None) -> Any:
        # Any: an execution result or an awaitable of one.
        result = super().execute_operation(serially)
        if not self.is_awaitable(result):
            self._release()
            return result

        async def released() -> Any:
            try:
                return await result
            finally:
                self._release()

        return released()

    def _release(self) -> None:
        """Break the executor's reference cycle once the operation is done (it holds bound
        methods of itself), so reference counting frees it and all it collected: left to the
        cycle collector, ~200 objects a request pile up into full collections that pause
        a loaded worker for tens of milliseconds (docs/performance.md)."""
        self.async_helpers = None  # type: ignore[assignment]

    def execute_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: FieldDetailsList,
        path: Path,
        position_context: Any = None,
    ) -> Any:
        # Any: graphql-core's signature (a source object, a value or an awaitable of one).
        node = field_details_list[0].node
        field_def = parent_type.fields.get(node.name.value)
        if (
            field_def is not None
            and not node.arguments
            and not field_def.args
            and (self.middleware_manager is None or not self.middleware_manager.middlewares)
            and getattr(field_def.resolve, "_is_default", False)
        ):
            leaf = field_def.type
            if isinstance(leaf, GraphQLNonNull):
                leaf = leaf.of_type
            if is_leaf_type(leaf):
                assert field_def.resolve is not None
                try:
                    value = field_def.resolve(source, None)
                except Exception:
                    value = None
                if value is not None:
                    coerced = _coerce(leaf, value)
                    if coerced is not None:
                        return coerced
        return super().execute_field(
            parent_type, source, field_details_list, path, position_context
        )


def _coerce(leaf: GraphQLLeafType, value: Any) -> Any:
    # Any: a scalar or enum value and its output form; None where graphql-core must decide.
    try:
        coerced = leaf.coerce_output_value(value)
    except Exception:
        return None
    return None if coerced is Undefined else coerced
