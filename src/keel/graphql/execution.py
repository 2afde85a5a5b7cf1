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

from collections.abc import Callable
from enum import Enum
from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    Undefined,
    is_leaf_type,
)
from graphql.execution.collect_fields import FieldDetailsList
from graphql.pyutils import Path
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext


class FastLeafExecutionContext(StrawberryGraphQLCoreExecutionContext):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Any: graphql-core's constructor arguments, passed through.
        super().__init__(*args, **kwargs)
        self._leaf_plans: dict[int, tuple[FieldDetailsList, _LeafPlan | None]] = {}

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

    def _leaf_plan(
        self, parent_type: GraphQLObjectType, field_details_list: FieldDetailsList
    ) -> _LeafPlan | None:
        """How to read this field directly, or None when graphql-core must; decided once per
        field of the operation (a list of 20 objects asks 20 times)."""
        plans = self._leaf_plans
        # Like graphql-core's own memo: by the identity of the list, kept alive with it.
        known = plans.get(id(field_details_list))
        if known is not None and known[0] is field_details_list:
            return known[1]
        plan = _plan(parent_type, field_details_list, self)
        plans[id(field_details_list)] = (field_details_list, plan)
        return plan

    def execute_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: FieldDetailsList,
        path: Path,
        position_context: Any = None,
    ) -> Any:
        # Any: graphql-core's signature (a source object, a value or an awaitable of one).
        plan = self._leaf_plan(parent_type, field_details_list)
        if plan is not None:
            resolve, coerce = plan
            try:
                value = resolve(source, None)
                coerced = None if value is None else coerce(value)
            except Exception:
                coerced = None  # graphql-core's own path below reports it
            if coerced is not None and coerced is not Undefined:
                return coerced
        return super().execute_field(
            parent_type, source, field_details_list, path, position_context
        )


# A plain leaf field: its resolver (strawberry's attribute read) and its output coercion.
_LeafPlan = tuple[Callable[..., Any], Callable[[Any], Any]]


def _plan(
    parent_type: GraphQLObjectType,
    field_details_list: FieldDetailsList,
    executor: StrawberryGraphQLCoreExecutionContext,
) -> _LeafPlan | None:
    node = field_details_list[0].node
    field_def = parent_type.fields.get(node.name.value)
    if (
        field_def is None
        or field_def.resolve is None
        or node.arguments
        or field_def.args
        or (executor.middleware_manager is not None and executor.middleware_manager.middlewares)
        or not getattr(field_def.resolve, "_is_default", False)
    ):
        return None
    leaf = field_def.type
    if isinstance(leaf, GraphQLNonNull):
        leaf = leaf.of_type
    if not is_leaf_type(leaf):
        return None
    assert isinstance(leaf, GraphQLScalarType | GraphQLEnumType)
    if isinstance(leaf, GraphQLEnumType):
        # strawberry's enum type scans its values comparing `.value` for every output.
        names = _names_of(leaf)
        coerce_enum = leaf.coerce_output_value

        def coerce(value: Any) -> Any:
            return names[value] if value in names else coerce_enum(value)

        return field_def.resolve, coerce
    return field_def.resolve, leaf.coerce_output_value


def _names_of(leaf: GraphQLEnumType) -> dict[Enum, str]:
    wrapped = getattr(leaf, "wrapped_cls", None)
    if not (isinstance(wrapped, type) and issubclass(wrapped, Enum)):
        return {}
    by_value = {definition.value: name for name, definition in leaf.values.items()}
    return {member: by_value[member.value] for member in wrapped if member.value in by_value}
