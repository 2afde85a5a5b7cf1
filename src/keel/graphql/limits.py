"""Depth, alias and cost limits, checked on the document before anything executes.

One pass over the operation; each fragment is measured once and reused wherever it is
spread, so a document that spreads fragments into each other many times costs linear work
to measure (graphql-core's own NoFragmentCycles rule rejects cycles; here a cycle simply
counts nothing). Cost: every connection field costs its `first`, times the `first` of the
connections it sits in (the rows it may return).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    validate,
)
from strawberry.extensions import SchemaExtension

from keel.graphql.errors import too_complex

V = TypeVar("V")
CONNECTION_FIELDS = frozenset({"projects", "users"})
DEFAULT_FIRST = 20
MAX_FIRST = 100


@dataclass(frozen=True, slots=True)
class Limits:
    max_depth: int
    max_aliases: int
    max_cost: int


# The standard introspection query (GraphiQL's, schemathesis') nests type references about
# 13 deep: introspection fields are measured on their own, against this depth.
MAX_INTROSPECTION_DEPTH = 20


@dataclass(frozen=True, slots=True)
class Measure:
    depth: int = 0
    aliases: int = 0
    cost: int = 0  # at a multiplier of 1: scales linearly with the enclosing connections
    introspection_depth: int = 0


class _Measurer:
    def __init__(
        self,
        fragments: dict[str, FragmentDefinitionNode],
        variables: Mapping[str, object],
    ) -> None:
        self._fragments = fragments
        self._variables = variables
        self._done: dict[str, Measure] = {}
        self._active: set[str] = set()

    def first_of(self, node: FieldNode) -> int:
        for argument in node.arguments or ():
            if argument.name.value != "first":
                continue
            value = argument.value
            if isinstance(value, IntValueNode):
                return _bounded_int(value.value)
            if isinstance(value, VariableNode):
                # Not given (its definition may have a default we do not read): the most.
                raw = self._variables.get(value.name.value)
                return raw if isinstance(raw, int) and not isinstance(raw, bool) else MAX_FIRST
            return DEFAULT_FIRST  # null (or a value the field will refuse anyway)
        return DEFAULT_FIRST

    def fragment(self, name: str) -> Measure:
        if name in self._done:
            return self._done[name]
        definition = self._fragments.get(name)
        if definition is None or name in self._active:
            return Measure()
        self._active.add(name)
        measure = self.selections(definition.selection_set)
        self._active.discard(name)
        self._done[name] = measure
        return measure

    def selections(self, selection_set: SelectionSetNode | None) -> Measure:
        if selection_set is None:
            return Measure()
        depth = aliases = cost = introspection = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                inner = self.selections(selection.selection_set)
                alias = 1 if selection.alias else 0
                if selection.name.value.startswith("__"):
                    part = Measure(
                        depth=1,
                        aliases=inner.aliases + alias,
                        introspection_depth=max(inner.depth, inner.introspection_depth) + 1,
                    )
                else:
                    multiplier = 1
                    own = 0
                    if selection.name.value in CONNECTION_FIELDS:
                        multiplier = max(self.first_of(selection), 1)
                        own = multiplier
                    part = Measure(
                        depth=inner.depth + 1,
                        aliases=inner.aliases + alias,
                        cost=own + multiplier * inner.cost,
                        introspection_depth=inner.introspection_depth,
                    )
            elif isinstance(selection, InlineFragmentNode):
                part = self.selections(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                part = self.fragment(selection.name.value)
            else:  # pragma: no cover - the three kinds of selection
                continue
            depth = max(depth, part.depth)
            aliases += part.aliases
            cost += part.cost
            introspection = max(introspection, part.introspection_depth)
        return Measure(depth=depth, aliases=aliases, cost=cost, introspection_depth=introspection)


def _bounded_int(text: str) -> int:
    # An absurd literal is measured, not converted without bound.
    return int(text) if len(text) <= 9 else 10**9


def measure_document(document: DocumentNode, variables: Mapping[str, object]) -> list[Measure]:
    """The measure of each operation in the document."""
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    measurer = _Measurer(fragments, variables)
    return [
        measurer.selections(d.selection_set)
        for d in document.definitions
        if isinstance(d, OperationDefinitionNode)
    ]


def violations(limits: Limits, measure: Measure) -> list[str]:
    found = []
    if measure.depth > limits.max_depth:
        found.append(f"Query depth {measure.depth} exceeds the limit of {limits.max_depth}")
    if measure.aliases > limits.max_aliases:
        found.append(f"{measure.aliases} aliases exceed the limit of {limits.max_aliases}")
    if measure.introspection_depth > MAX_INTROSPECTION_DEPTH:
        found.append(
            f"Introspection depth {measure.introspection_depth} exceeds the limit of "
            f"{MAX_INTROSPECTION_DEPTH}"
        )
    if measure.cost > limits.max_cost:
        found.append(f"Query cost {measure.cost} exceeds the limit of {limits.max_cost}")
    return found


def _frozen(variables: Mapping[str, object] | None) -> tuple[tuple[str, object], ...] | None:
    """Hashable variables that decide costs (ints); None when some value is not hashable."""
    try:
        frozen = tuple(sorted((variables or {}).items()))
        hash(frozen)
    except TypeError:
        return None
    return frozen


def _measured_violations(
    document: DocumentNode, variables: Mapping[str, object], limits: Limits
) -> tuple[str, ...]:
    try:
        measures = measure_document(document, variables)
    except RecursionError:  # nesting far beyond any limit
        measures = [Measure(depth=limits.max_depth + 1)]
    return tuple(message for measure in measures for message in violations(limits, measure))


class TextKeyedCache(Generic[V]):
    """A bounded cache keyed by the document's text, never by its AST: graphql-core's nodes
    are frozen dataclasses whose hash walks the whole tree on every lookup (~50 µs for a
    list query), where a str caches its hash. The parser cache hands out the same document
    for the same text, so the text stands for the document."""

    def __init__(self, maxsize: int = 512) -> None:
        self.maxsize = maxsize
        self._entries: dict[Hashable, V] = {}

    def get_or_compute(self, key: Hashable, compute: Callable[[], V]) -> V:
        try:
            return self._entries[key]
        except KeyError:
            pass
        value = compute()
        if len(self._entries) >= self.maxsize:
            del self._entries[next(iter(self._entries))]  # the oldest entry
        self._entries[key] = value
        return value


class ComplexityLimiter(SchemaExtension):
    """Rejects an over-limit document with QUERY_TOO_COMPLEX before graphql-core's own
    validation runs (so a hostile document costs only this linear measurement)."""

    def __init__(self, *, limits: Limits, cache: TextKeyedCache[tuple[str, ...]]) -> None:
        self.limits = limits
        self.cache = cache

    def _violations(self) -> tuple[str, ...]:
        context = self.execution_context
        document = context.graphql_document
        assert document is not None
        variables = context.variables
        frozen = _frozen(variables)
        if frozen is None or context.query is None:
            return _measured_violations(document, variables or {}, self.limits)
        return self.cache.get_or_compute(
            (context.query, frozen),
            lambda: _measured_violations(document, variables or {}, self.limits),
        )

    def on_validate(self) -> Iterator[None]:
        # Runs after the validation hook before it has set the document's own errors.
        context = self.execution_context
        if context.graphql_document is not None:
            errors = [too_complex(message) for message in self._violations()]
            if errors:
                context.pre_execution_errors = [*(context.pre_execution_errors or []), *errors]
        yield


class ValidationByText(SchemaExtension):
    """graphql-core's validation of a document, once per text and set of rules (strawberry's
    ValidationCache keys its cache by the AST, see TextKeyedCache)."""

    def __init__(self, *, cache: TextKeyedCache[list[GraphQLError]]) -> None:
        self.cache = cache

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None and context.query is not None:
            rules = tuple(context.validation_rules)
            context.pre_execution_errors = list(
                self.cache.get_or_compute(
                    (context.query, rules),
                    lambda: validate(context.schema._schema, document, rules),
                )
            )
        yield
