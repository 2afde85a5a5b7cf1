"""Pure pieces of the GraphQL adapter: error shaping, the limiter's measurements."""

from __future__ import annotations

from graphql import GraphQLError, parse

from keel.graphql.errors import shape_error
from keel.graphql.limits import Limits, Measure, measure_document, violations
from keel.platform.errors import PreconditionFailed


def test_unexpected_errors_are_masked_and_service_errors_keep_their_code() -> None:
    leaked = GraphQLError("secret SQL text", path=["projects"], original_error=RuntimeError("x"))
    masked = shape_error(leaked).formatted
    assert masked["message"] == "Internal server error"
    assert masked["extensions"] == {"code": "INTERNAL_ERROR"}
    stale = shape_error(GraphQLError("x", path=["p"], original_error=PreconditionFailed()))
    assert stale.extensions == {"code": "PRECONDITION_FAILED"}
    assert shape_error(GraphQLError("Cannot query field")).extensions == {
        "code": "GRAPHQL_VALIDATION_FAILED"
    }
    assert shape_error(GraphQLError("bad", path=["a"])).extensions == {"code": "BAD_USER_INPUT"}


def test_first_is_read_from_literals_variables_and_defaults() -> None:
    document = parse(
        "query($n: Int, $m: Int) { a: projects(first: 7) { totalCount } "
        "b: projects(first: $n) { totalCount } c: projects(first: $m) { totalCount } "
        "d: projects(first: null) { totalCount } e: projects { totalCount } }"
    )
    [measure] = measure_document(document, {"n": 3})
    assert measure.cost == 7 + 3 + 100 + 20 + 20
    assert measure.aliases == 5
    assert measure.depth == 2


def test_nested_connections_multiply_and_fragments_count_once_each() -> None:
    document = parse(
        "{ users(first: 10) { edges { node { ...P } } } } "
        "fragment P on User { projects(first: 5) { edges { node { id } } } }"
    )
    [measure] = measure_document(document, {})
    assert measure.cost == 10 + 10 * 5
    limits = Limits(max_depth=10, max_aliases=15, max_cost=50)
    assert violations(limits, measure) == ["Query cost 60 exceeds the limit of 50"]
    assert violations(limits, Measure(introspection_depth=21))
